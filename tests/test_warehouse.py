"""Delta writes on a Spark Connect session: each write mode is one commit, reads are exact at a version."""

import datetime as dt
import uuid

import pytest

from pyspark.sql import functions as F

from jobs.table import Append, Merge, Overwrite
from jobs.warehouse import Days, Warehouse, WriteTxn

SCHEMA = "id bigint, name string"


@pytest.fixture(params=["directory", "catalog"])
def warehouse(request, tmp_path) -> Warehouse:
    """Tables in a directory (local), or addressed by name in a catalog (as on Unity Catalog;
    here the Spark server's session catalog)."""
    if request.param == "directory":
        return Warehouse(catalog="main", landing_root=str(tmp_path), root=str(tmp_path / "warehouse"))
    return Warehouse(catalog="spark_catalog", landing_root=str(tmp_path))


@pytest.fixture
def schema(warehouse, spark) -> str:
    """A schema of the test's own: the server's catalog outlives test runs."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    if warehouse.root is None:
        spark.sql(f"DROP SCHEMA IF EXISTS {warehouse.catalog}.{name} CASCADE").collect()


def test_each_write_mode_is_one_commit_and_old_versions_stay_readable(warehouse, schema, spark):
    people = f"{schema}.people"

    def write(data, mode, run):
        return warehouse.write(spark, people, spark.createDataFrame(data, SCHEMA), mode, WriteTxn(run))

    def rows(version):
        return sorted(tuple(r) for r in warehouse.read_table(spark, people, version).collect())

    first = write([(1, "ann"), (2, "bob")], Overwrite(), "run 1")
    appended = write([(3, "cy")], Append(), "run 2")
    merged = write([(2, "bobby"), (4, "dee")], Merge(keys=("id",)), "run 3")
    replaced = write([(9, "zed")], Overwrite(), "run 4")

    assert [c.version for c in (first, appended, merged, replaced)] == [0, 1, 2, 3]
    assert merged.operation == "MERGE"
    assert all(c.files_written >= 1 and c.bytes_written > 0 for c in (first, appended, merged, replaced))
    assert rows(2) == [(1, "ann"), (2, "bobby"), (3, "cy"), (4, "dee")]
    assert rows(3) == [(9, "zed")]
    assert rows(0) == [(1, "ann"), (2, "bob")]
    assert warehouse.latest_version(spark, people) == 3


def test_a_repeated_write_commits_once(warehouse, schema, spark):
    people = f"{schema}.people"
    data = spark.createDataFrame([(1, "ann")], SCHEMA)

    first = warehouse.write(spark, people, data, Append(), WriteTxn("run 1"))
    repeated = warehouse.write(spark, people, data, Append(), WriteTxn("run 1"))

    assert repeated == first
    assert warehouse.read_table(spark, people, warehouse.latest_version(spark, people)).count() == 1


def test_a_write_observes_each_row_it_writes_once_and_nothing_when_delta_skips_it(warehouse, schema, spark):
    day = dt.date.fromisoformat
    sales = f"{schema}.sales"
    rows = spark.createDataFrame([(day("2024-01-02"), 1), (day("2024-01-01"), None), (day("2024-01-02"), 3)],
                                 "sold_on date, amount int")
    metrics = {"rows": F.count(F.lit(1)), "no_amount": F.count_if(F.col("amount").isNull()),
               "days": F.collect_set("sold_on")}
    warehouse.write(spark, sales, rows.limit(0), Overwrite(), WriteTxn("run 0"))

    # Sorted by day: the sort's sampling pass must not count the rows a second time.
    written = warehouse.write(spark, sales, rows, Append(), WriteTxn("run 1"), sort_by_day="sold_on", observe=metrics)
    repeated = warehouse.write(spark, sales, rows, Append(), WriteTxn("run 1"), sort_by_day="sold_on", observe=metrics)

    assert (written.observed["rows"], written.observed["no_amount"]) == (3, 1)
    assert sorted(written.observed["days"]) == [day("2024-01-01"), day("2024-01-02")]
    assert repeated.version == written.version and repeated.observed is None


def test_reading_a_table_that_was_never_written_names_it(warehouse, schema, spark):
    with pytest.raises(FileNotFoundError, match=rf"input table {warehouse.catalog}\.{schema}\.ghost does not exist"):
        warehouse.latest_version(spark, f"{schema}.ghost")


def test_the_latest_version_of_a_table_or_none_before_its_first_write(warehouse, schema, spark):
    people = f"{schema}.people"
    assert warehouse.read_latest(spark, people) is None

    warehouse.write(spark, people, spark.createDataFrame([(1, "ann")], SCHEMA), Overwrite(), WriteTxn("run 1"))
    warehouse.write(spark, people, spark.createDataFrame([(2, "bob")], SCHEMA), Append(), WriteTxn("run 2"))

    assert sorted(tuple(r) for r in warehouse.read_latest(spark, people).collect()) == [(1, "ann"), (2, "bob")]


def test_an_overwrite_of_days_replaces_those_days_and_keeps_the_others(warehouse, schema, spark):
    day = dt.date.fromisoformat
    sales, columns = f"{schema}.sales", "sold_on date, amount int"
    warehouse.write(spark, sales, spark.createDataFrame(
        [(day("2024-01-01"), 1), (day("2024-01-02"), 2), (day("2024-01-03"), 3)], columns), Overwrite(), WriteTxn("run 1"))

    second_day = Days("sold_on", "2024-01-02", "2024-01-03")
    rewrite = spark.createDataFrame([(day("2024-01-02"), 20), (day("2024-01-02"), 21)], columns)
    commit = warehouse.write(spark, sales, rewrite, Overwrite(), WriteTxn("run 2"), days=second_day)

    table = sorted(tuple(r) for r in warehouse.read_table(spark, sales, commit.version).collect())
    assert table == [(day("2024-01-01"), 1), (day("2024-01-02"), 20), (day("2024-01-02"), 21), (day("2024-01-03"), 3)]
    assert commit.read_version == 0


def test_undo_gives_back_a_versions_contents_as_a_new_commit(warehouse, schema, spark):
    people = f"{schema}.people"
    warehouse.write(spark, people, spark.createDataFrame([(1, "ann")], SCHEMA), Overwrite(), WriteTxn("run 1"))
    warehouse.write(spark, people, spark.createDataFrame([(2, "bad")], SCHEMA), Overwrite(), WriteTxn("run 2"))

    undone = warehouse.undo(spark, people, 0, days=None, tag="run 2 undo")

    assert (undone.version, undone.operation) == (2, "RESTORE")
    assert [tuple(r) for r in warehouse.read_table(spark, people, 2).collect()] == [(1, "ann")]
