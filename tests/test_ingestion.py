"""Bronze tables ingest each landing file once, and say which days of silver their new rows touch."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from jobs.contract import DayRange
from jobs.ingestion_record import record_name
from jobs.landing_files import ChangedLandingFile, LandingFile, new_files
from jobs.registry import discover
from jobs.contract import day_ranges
from jobs.runtime import build_table
from jobs.warehouse import Warehouse

DECLARATIONS = discover()
SILVER = "silver.order_lines"


def test_new_files_are_those_not_ingested_and_a_changed_one_is_refused_by_name():
    ingested = {LandingFile("orders/a.parquet", 10, 1), LandingFile("orders/gone.parquet", 5, 1)}
    listed = [LandingFile("orders/a.parquet", 10, 1), LandingFile("orders/b.parquet", 7, 2)]

    assert new_files(listed, ingested, "main.bronze.orders") == [LandingFile("orders/b.parquet", 7, 2)]

    rewritten = [LandingFile("orders/a.parquet", 11, 3)]
    with pytest.raises(ChangedLandingFile, match=r"main.bronze.orders: .*orders/a.parquet \(ingested at 10 bytes"):
        new_files(rewritten, ingested, "main.bronze.orders")


def test_touched_dates_become_the_fewest_ranges_of_consecutive_days():
    dates = {dt.date(1998, 7, 3), dt.date(1998, 7, 4), dt.date(1993, 1, 1)}

    assert day_ranges(dates) == [DayRange("1993-01-01", "1993-01-02"), DayRange("1998-07-03", "1998-07-05")]


class Ingestion:
    """A landing area and warehouse of the test's own, built with the job's build_table."""

    def __init__(self, spark, root: Path, landing: str):
        self.spark, self.landing = spark, root / "landing"
        shutil.copytree(landing, self.landing)
        self.warehouse = Warehouse("main", str(self.landing), str(root / "warehouse"),
                                   frozenset(DECLARATIONS.external))

    def build(self, table: str, write_id: str):
        return build_table(self.spark, self.warehouse, DECLARATIONS.tables[table], {}, write_id, DECLARATIONS)

    def rows(self, table: str) -> list[dict]:
        return DeltaTable(self.warehouse.location(table)).to_pyarrow_table().to_pylist()

    def land_copies(self, dataset: str, name: str, where: str, key_column: str | None) -> Path:
        """Land, as a new file, copies of the landed rows matching `where`: under new keys, or
        (without `key_column`) as they are."""
        staged = self.landing / f".{name}"
        rows = "*" if key_column is None else f"* REPLACE ({key_column} + 100000000 AS {key_column})"
        duckdb.sql(f"COPY (SELECT {rows} FROM '{self.landing}/{dataset}/*.parquet' WHERE {where}) "
                   f"TO '{staged}' (FORMAT parquet)")
        landed = self.landing / dataset / name
        os.replace(staged, landed)  # whole, as an ingestion tool delivers it
        return landed

    def record_location(self, table: str) -> str:
        return self.warehouse.location(record_name(table))

    def recorded(self, table: str) -> set[str]:
        """The landing files the table's record of ingested files lists."""
        return {row["path"] for row in DeltaTable(self.record_location(table)).to_pyarrow_table().to_pylist()}

    def version(self, table: str) -> int:
        return DeltaTable(self.warehouse.location(table)).version()


@pytest.fixture
def ingestion(spark, tmp_path, landing) -> Ingestion:
    ingestion = Ingestion(spark, tmp_path, landing)
    for table in ("bronze.orders", "bronze.lineitem", "bronze.customers"):
        ingestion.build(table, "first")
    return ingestion


@pytest.fixture
def orders_ingestion(spark, tmp_path, landing) -> Ingestion:
    """bronze.orders alone ingested, for what needs no other table."""
    ingestion = Ingestion(spark, tmp_path, landing)
    ingestion.build("bronze.orders", "first")
    return ingestion


def test_a_first_ingestion_touches_every_day(spark, tmp_path, landing):
    first = Ingestion(spark, tmp_path, landing).build("bronze.orders", "first")

    assert first.touched_days == {SILVER: None}  # None: every day


def test_a_new_file_is_appended_once_across_a_retry_and_a_later_run(ingestion):
    before = len(ingestion.rows("bronze.orders"))
    late = ingestion.land_copies("orders", "orders.late.parquet", "o_orderkey <= 3", "o_orderkey")

    first = ingestion.build("bronze.orders", "second")
    retried = ingestion.build("bronze.orders", "second")  # the job's retry, after its commit
    later = ingestion.build("bronze.orders", "third")

    assert first.commit.version == retried.commit.version == later.commit.version == 1
    rows = ingestion.rows("bronze.orders")
    assert len(rows) == before + 3
    per_file = Counter(row["_source_file"] for row in rows)
    assert set(per_file) == {f"orders/{path.name}" for path in (ingestion.landing / "orders").glob("*.parquet")}
    assert per_file[f"orders/{late.name}"] == 3


def test_nothing_new_makes_no_commit_and_touches_no_day(ingestion):
    build = ingestion.build("bronze.orders", "again")

    assert build.commit.version == ingestion.version("bronze.orders") == 0
    assert build.touched_days == {}


def test_a_changed_file_is_refused_with_its_name_and_the_table_keeps_its_version(ingestion):
    landed = next((ingestion.landing / "orders").glob("*.parquet"))
    os.utime(landed, (0, 0))

    with pytest.raises(ChangedLandingFile, match=f"orders/{landed.name}"):
        ingestion.build("bronze.orders", "after-change")
    assert ingestion.version("bronze.orders") == 0


def test_late_rows_touch_the_days_of_their_orders_only(ingestion):
    first_two_years = duckdb.sql(
        f"SELECT min(o_orderkey) FROM '{ingestion.landing}/orders/*.parquet' GROUP BY year(o_orderdate) "
        "ORDER BY 1 LIMIT 2").fetchall()
    keys = ", ".join(str(key) for (key,) in first_two_years)
    ingestion.land_copies("orders", "orders.late.parquet", f"o_orderkey IN ({keys})", "o_orderkey")
    ingestion.land_copies("lineitem", "lineitem.late.parquet", f"l_orderkey IN ({keys})", "l_orderkey")
    late_days = {row[0] for row in duckdb.sql(
        f"SELECT o_orderdate FROM '{ingestion.landing}/orders/orders.late.parquet'").fetchall()}

    orders_build = ingestion.build("bronze.orders", "late")
    lineitem_build = ingestion.build("bronze.lineitem", "late")

    expected = day_ranges(late_days)
    assert orders_build.touched_days == {SILVER: expected}
    # Line items map to their orders' days through bronze.orders, which has the late orders now.
    assert lineitem_build.touched_days == {SILVER: expected}


@pytest.mark.parametrize(("table", "dataset", "key"), [
    ("bronze.orders", "orders", "o_orderkey"), ("bronze.lineitem", "lineitem", "l_orderkey")])
def test_a_duplicate_of_a_years_old_key_is_refused_and_the_table_keeps_its_rows(ingestion, table, dataset, key):
    [(oldest,)] = duckdb.sql(f"SELECT min({key}) FROM '{ingestion.landing}/{dataset}/*.parquet'").fetchall()
    before = ingestion.rows(table)
    ingestion.land_copies(dataset, f"{dataset}.again.parquet", f"{key} = {oldest}", key_column=None)

    build = ingestion.build(table, "duplicate")

    [unique] = [check for check in build.checks if check.name.startswith("unique_")]
    assert not unique.passed and unique.samples[0][key] == oldest
    assert build.undone_version is not None
    assert sorted(map(str, ingestion.rows(table))) == sorted(map(str, before))
    # The refused file was not recorded as ingested: the next build tries it, and refuses it, again.
    again = ingestion.build(table, "after the refusal")
    assert [f.path for f in again.ingested] == [f"{dataset}/{dataset}.again.parquet"]
    assert again.undone_version is not None


def test_bronze_files_hold_runs_of_order_dates_so_a_day_is_in_one_or_two_files(spark, tmp_path, landing,
                                                                               monkeypatch):
    monkeypatch.setattr("jobs.warehouse.ROWS_PER_SORTED_FILE", 150)  # several files from a small history
    ingestion = Ingestion(spark, tmp_path, landing)
    ingestion.build("bronze.orders", "first")
    ingestion.build("bronze.lineitem", "first")

    for table, column in (("bronze.orders", "o_orderdate"), ("bronze.lineitem", "l_orderdate")):
        files = pa.table(DeltaTable(ingestion.warehouse.location(table)).get_add_actions(flatten=True)).to_pylist()
        spans = sorted((f[f"min.{column}"], f[f"max.{column}"]) for f in files)
        assert len(spans) >= 10, table
        # Statistics on what reads skip by alone: each file's entry in the Delta log stays short.
        assert {k for k in files[0] if k.startswith("min.")} == {f"min.{column}", "min._source_modified_us"}, table
        assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:])), f"{table} files overlap"
        day = spans[len(spans) // 2][0]
        assert sum(low <= day <= high for low, high in spans) <= 2, table


def test_the_record_of_ingested_files_is_read_without_scanning_the_rows(orders_ingestion, monkeypatch):
    orders_ingestion.land_copies("orders", "orders.new.parquet", "o_orderkey <= 3", "o_orderkey")
    monkeypatch.setattr(Warehouse, "ingested_files", _no_scan)

    build = orders_ingestion.build("bronze.orders", "second")

    assert [f.path for f in build.ingested] == ["orders/orders.new.parquet"]
    assert orders_ingestion.recorded("bronze.orders") == _landed_files(orders_ingestion.landing, "orders")


def test_a_record_that_missed_a_commit_catches_up_from_the_tables_history(orders_ingestion, monkeypatch):
    """As after a job killed between its commit and saving the record."""
    orders_ingestion.land_copies("orders", "orders.a.parquet", "o_orderkey <= 3", "o_orderkey")
    orders_ingestion.build("bronze.orders", "second")
    orders_ingestion.spark.sql(f"RESTORE TABLE delta.`{orders_ingestion.record_location('bronze.orders')}` TO VERSION AS OF 0").collect()
    orders_ingestion.land_copies("orders", "orders.b.parquet", "o_orderkey BETWEEN 4 AND 7", "o_orderkey")
    monkeypatch.setattr(Warehouse, "ingested_files", _no_scan)

    build = orders_ingestion.build("bronze.orders", "third")

    assert [f.path for f in build.ingested] == ["orders/orders.b.parquet"]
    assert Counter(row["_source_file"] for row in orders_ingestion.rows("bronze.orders"))["orders/orders.a.parquet"] == 3
    assert orders_ingestion.recorded("bronze.orders") == _landed_files(orders_ingestion.landing, "orders")


def test_after_a_restore_the_files_since_that_version_are_ingested_again_once(orders_ingestion):
    orders_ingestion.land_copies("orders", "orders.a.parquet", "o_orderkey <= 3", "o_orderkey")
    orders_ingestion.build("bronze.orders", "second")
    orders_ingestion.spark.sql(f"RESTORE TABLE delta.`{orders_ingestion.warehouse.location('bronze.orders')}` TO VERSION AS OF 0").collect()

    build = orders_ingestion.build("bronze.orders", "third")

    assert [f.path for f in build.ingested] == ["orders/orders.a.parquet"]
    assert Counter(row["_source_file"] for row in orders_ingestion.rows("bronze.orders"))["orders/orders.a.parquet"] == 3


def _no_scan(*args, **kwargs):
    raise AssertionError("scanned the table's rows for the files it holds")


def _landed_files(landing: Path, dataset: str) -> set[str]:
    return {f"{dataset}/{path.name}" for path in (landing / dataset).glob("*.parquet")}
