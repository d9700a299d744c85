"""Delta writes: each write mode is one commit, reads are exact at a version."""

import pytest

import datetime as dt

from jobs.table import Append, Merge, Overwrite
from jobs.warehouse import Days, Warehouse, WriteTxn

SCHEMA = "id bigint, name string"


@pytest.fixture(params=["directory", "catalog"])
def warehouse(request, tmp_path) -> Warehouse:
    """Tables in a directory (local), or addressed by name in a catalog (as on Unity Catalog;
    here Spark's session catalog, with a fresh schema per test)."""
    if request.param == "directory":
        return Warehouse(catalog="main", landing_root=str(tmp_path), root=str(tmp_path / "warehouse"))
    return Warehouse(catalog="spark_catalog", landing_root=str(tmp_path))


def rows(warehouse, spark, version):
    return sorted(tuple(r) for r in warehouse.read_table(spark, "silver.people", version).collect())


def test_each_write_mode_is_one_commit_and_old_versions_stay_readable(warehouse, spark):
    def write(data, mode, run):
        return warehouse.write(spark, "silver.people", spark.createDataFrame(data, SCHEMA), mode, WriteTxn(run))

    first = write([(1, "ann"), (2, "bob")], Overwrite(), "run 1")
    appended = write([(3, "cy")], Append(), "run 2")
    merged = write([(2, "bobby"), (4, "dee")], Merge(keys=("id",)), "run 3")
    replaced = write([(9, "zed")], Overwrite(), "run 4")

    assert [c.version for c in (first, appended, merged, replaced)] == [0, 1, 2, 3]
    assert merged.operation == "MERGE"
    assert all(c.files_written >= 1 and c.bytes_written > 0 for c in (first, appended, merged, replaced))
    assert rows(warehouse, spark, 2) == [(1, "ann"), (2, "bobby"), (3, "cy"), (4, "dee")]
    assert rows(warehouse, spark, 3) == [(9, "zed")]
    assert rows(warehouse, spark, 0) == [(1, "ann"), (2, "bob")]
    assert warehouse.latest_version(spark, "silver.people") == 3


def test_reading_a_table_that_was_never_written_names_it(warehouse, spark):
    with pytest.raises(FileNotFoundError, match=rf"input table {warehouse.catalog}\.silver\.ghost does not exist"):
        warehouse.latest_version(spark, "silver.ghost")


def test_an_overwrite_of_days_replaces_those_days_and_keeps_the_others(warehouse, spark):
    day = dt.date.fromisoformat
    sales = "sold_on date, amount int"
    warehouse.write(spark, "gold.sales", spark.createDataFrame(
        [(day("2024-01-01"), 1), (day("2024-01-02"), 2), (day("2024-01-03"), 3)], sales), Overwrite(), WriteTxn("run 1"))

    second_day = Days("sold_on", "2024-01-02", "2024-01-03")
    rewrite = spark.createDataFrame([(day("2024-01-02"), 20), (day("2024-01-02"), 21)], sales)
    commit = warehouse.write(spark, "gold.sales", rewrite, Overwrite(), WriteTxn("run 2"), days=second_day)

    table = sorted(tuple(r) for r in warehouse.read_table(spark, "gold.sales", commit.version).collect())
    assert table == [(day("2024-01-01"), 1), (day("2024-01-02"), 20), (day("2024-01-02"), 21), (day("2024-01-03"), 3)]
