"""Layout upkeep: every tenth commit compacts the small files of a table clustered by day and
vacuums, which keeps every version within the retention window readable; a version beyond it
is refused by name."""

from __future__ import annotations

import time

import pytest
from deltalake import DeltaTable

from jobs.table import Append, Overwrite
from jobs.upkeep import UPKEEP_EVERY_COMMITS, upkeep_when_due
from jobs.warehouse import PinnedVersionExpired, Warehouse, WriteTxn

TABLE = "upkeep.orders"


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    return Warehouse("main", str(tmp_path / "landing"), str(tmp_path / "warehouse"))


def write_day(spark, warehouse: Warehouse, day: int, mode=Append(), **options):
    rows = spark.sql(f"SELECT id AS o_orderkey, date_add(DATE'1995-01-01', {day}) AS o_orderdate FROM range({day}, {day + 3})")
    return warehouse.write(spark, TABLE, rows, mode, WriteTxn(f"{TABLE} day {day}"), **options)


def test_vacuum_keeps_every_version_of_the_window_readable_as_it_was(spark, warehouse):
    contents = {}
    for day in range(UPKEEP_EVERY_COMMITS + 1):  # every version a materialization could have pinned
        commit = write_day(spark, warehouse, day, mode=Overwrite() if day % 2 else Append())
        contents[commit.version] = sorted(warehouse.read_table(spark, TABLE, commit.version).collect())

    assert upkeep_when_due(spark, warehouse, TABLE, commit.version, compact=False)

    operations = [entry.operation for entry in spark.sql(f"DESCRIBE HISTORY delta.`{warehouse.location(TABLE)}`").collect()]
    assert "VACUUM END" in operations
    for version, rows in contents.items():
        assert sorted(warehouse.read_pinned(spark, TABLE, version).collect()) == rows, version


def test_upkeep_runs_only_after_every_tenth_commit(spark, warehouse):
    write_day(spark, warehouse, 0)

    assert not upkeep_when_due(spark, warehouse, TABLE, UPKEEP_EVERY_COMMITS - 1, compact=True)
    assert not upkeep_when_due(spark, warehouse, TABLE, 0, compact=True)


def test_a_pinned_version_beyond_the_retention_window_is_refused_naming_it(spark, warehouse):
    write_day(spark, warehouse, 0)
    location = warehouse.location(TABLE)
    spark.sql(f"ALTER TABLE delta.`{location}` SET TBLPROPERTIES "
              "('delta.deletedFileRetentionDuration' = 'interval 1 seconds')").collect()
    write_day(spark, warehouse, 1, mode=Overwrite())
    time.sleep(2)
    write_day(spark, warehouse, 2, mode=Overwrite())

    with pytest.raises(PinnedVersionExpired, match=r"main\.upkeep\.orders version 0 is older than the table's retention window"):
        warehouse.read_pinned(spark, TABLE, 0)


def test_the_tenth_commit_compacts_the_small_files_and_keeps_the_rows(spark, warehouse):
    for day in range(UPKEEP_EVERY_COMMITS + 1):
        commit = write_day(spark, warehouse, day, sort_by_day="o_orderdate")
    before = sorted(warehouse.read_table(spark, TABLE, commit.version).collect())

    assert upkeep_when_due(spark, warehouse, TABLE, commit.version, compact=True)

    table = DeltaTable(warehouse.location(TABLE))
    assert "OPTIMIZE" in [entry["operation"] for entry in table.history()]
    assert len(table.file_uris()) < UPKEEP_EVERY_COMMITS
    assert sorted(warehouse.read_table(spark, TABLE, table.version()).collect()) == before
