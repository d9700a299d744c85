"""Delta writes: each write mode is one commit, reads are exact at a version."""

import pytest

from jobs.table import Append, Merge, Overwrite
from jobs.warehouse import Warehouse

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
    first = warehouse.write(spark, "silver.people", spark.createDataFrame([(1, "ann"), (2, "bob")], SCHEMA), Overwrite())
    appended = warehouse.write(spark, "silver.people", spark.createDataFrame([(3, "cy")], SCHEMA), Append())
    merged = warehouse.write(
        spark, "silver.people", spark.createDataFrame([(2, "bobby"), (4, "dee")], SCHEMA), Merge(keys=("id",))
    )
    replaced = warehouse.write(spark, "silver.people", spark.createDataFrame([(9, "zed")], SCHEMA), Overwrite())

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
