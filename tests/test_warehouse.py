"""Delta writes: each write mode is one commit, reads are exact at a version."""

import pytest

from jobs.table import Append, Merge, Overwrite
from jobs.warehouse import Warehouse

SCHEMA = "id bigint, name string"


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    return Warehouse(root=str(tmp_path / "warehouse"), catalog="main", landing_root=str(tmp_path))


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
    assert [c.operation for c in (first, appended, merged, replaced)] == ["WRITE", "WRITE", "MERGE", "WRITE"]
    assert rows(warehouse, spark, 2) == [(1, "ann"), (2, "bobby"), (3, "cy"), (4, "dee")]
    assert rows(warehouse, spark, 3) == [(9, "zed")]
    assert rows(warehouse, spark, 0) == [(1, "ann"), (2, "bob")]
    assert warehouse.latest_version(spark, "silver.people") == 3
    assert merged.files_written >= 1 and merged.bytes_written > 0


def test_reading_a_table_that_was_never_written_names_it(warehouse, spark):
    with pytest.raises(FileNotFoundError, match=r"input table main\.silver\.ghost does not exist"):
        warehouse.latest_version(spark, "silver.ghost")
