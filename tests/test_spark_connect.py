"""The job side runs on a Spark Connect session (the warm local server, Databricks serverless and
standard access mode), and the orchestrator never loads Spark.

Write modes are tested on the same session in test_warehouse.py; quarantine and a RESTORE after
a failed blocking check in test_write_safety.py, through jobs that connect to the server.
"""

import dataclasses
import datetime
import re
import subprocess
import sys

import pytest
from deltalake import DeltaTable
from pyspark.sql.connect.session import SparkSession as ConnectSession

from jobs.registry import discover
from jobs.table import Overwrite
from jobs.runtime import build_table
from jobs.warehouse import Days, Warehouse
from resources.paths import PROJECT_DIR

# What Spark Connect cannot do (nor serverless or standard access mode).
CLASSIC_ONLY = re.compile(r"\bDeltaTable\b|\bsparkContext\b|\b_jvm\b|\.rdd\b")


def test_no_job_module_uses_what_spark_connect_lacks():
    offenders = [
        f"{path.relative_to(PROJECT_DIR)}:{number}: {line.strip()}"
        for path in sorted((PROJECT_DIR / "jobs").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if CLASSIC_ONLY.search(line) and not line.lstrip().startswith("#")
    ]
    assert offenders == []


def test_the_orchestrator_loads_its_definitions_without_spark_or_delta():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, platform_assets.definitions, scripts.runs; "
                               "print(sorted({m.split('.')[0] for m in sys.modules} & {'pyspark', 'delta', 'py4j'}))"],
        cwd=PROJECT_DIR, capture_output=True, text=True, check=True,
    )
    assert loaded.stdout.strip() == "[]"


@pytest.fixture
def warehouse(tmp_path, landing) -> Warehouse:
    return Warehouse(catalog="main", landing_root=landing, root=str(tmp_path / "warehouse"),
                     external=frozenset(discover().external))


def test_tests_and_jobs_get_a_spark_connect_session(spark):
    assert isinstance(spark, ConnectSession)


def test_a_retried_build_does_not_commit_twice(spark, warehouse):
    # Rebuilt whole (an ingesting table's retry is in tests/test_ingestion.py).
    orders = dataclasses.replace(discover().tables["bronze.orders"], write=Overwrite(), checks=())

    first = build_table(spark, warehouse, orders, {}, write_id="run-a")
    retried = build_table(spark, warehouse, orders, {}, write_id="run-a")
    next_run = build_table(spark, warehouse, orders, {}, write_id="run-b")

    assert retried.commit.version == first.commit.version
    assert next_run.commit.version == first.commit.version + 1
    assert DeltaTable(warehouse.location("bronze.orders")).version() == next_run.commit.version


def test_a_failing_blocking_check_undoes_only_the_days_it_wrote(spark, warehouse):
    declarations = discover()
    tables = declarations.tables
    for name in ("bronze.orders", "bronze.lineitem", "bronze.customers"):
        build_table(spark, warehouse, tables[name], {}, write_id="run-1", declarations=declarations)
    silver, gold = tables["silver.order_lines"], tables["gold.daily_nation_revenue"]
    every_day = Days(gold.partitions.column, gold.partitions.start, gold.partitions.end)
    build_table(spark, warehouse, silver, {}, "run-1", declarations, every_day.on(silver.partitions.column))
    first = build_table(spark, warehouse, gold, {}, "run-1", declarations, every_day)
    built = DeltaTable(warehouse.location("gold.daily_nation_revenue")).to_pyarrow_table().to_pylist()
    a_day = min(row["order_date"] for row in built)
    one_day = Days("order_date", a_day.isoformat(), (a_day + datetime.timedelta(days=1)).isoformat())

    def duplicated(order_lines):  # every row twice: the blocking unique check fails
        result = gold.transform(order_lines)
        return result.unionAll(result)

    broken = build_table(spark, warehouse, dataclasses.replace(gold, transform=duplicated),
                         {}, "run-2", declarations, one_day)

    assert broken.undone_version == first.commit.version + 1
    assert broken.commit.version == first.commit.version + 2 and broken.commit.operation == "WRITE"
    unique = next(o for o in broken.checks if o.name == "unique_order_date_nation")
    assert not unique.passed and unique.failing_count > 0
    contents = DeltaTable(warehouse.location("gold.daily_nation_revenue")).to_pyarrow_table()
    assert sorted(map(str, contents.to_pylist())) == sorted(
        map(str, DeltaTable(warehouse.location("gold.daily_nation_revenue"), version=first.commit.version)
            .to_pyarrow_table().to_pylist()))
