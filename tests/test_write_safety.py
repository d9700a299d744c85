"""Writes that lose nothing: bad rows, checks, retries, kills and concurrent writers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from jobs.registry import discover
from jobs.runtime import BuildFailed, build_table
from jobs.warehouse import Warehouse
from platform_assets.table_assets import table_key
from resources.local_runner import LocalSparkRunner
from resources.paths import PROJECT_DIR
from resources.spark_server import LocalSparkServer
from scripts.runs import materialize_tables
from tests.landed_files import land_new_orders

ORDERS = table_key("main", "bronze.orders")


class Platform:
    """A warehouse, a landing directory and an instance of their own, materialized in process."""

    def __init__(self, root: Path, landing: str):
        self.warehouse, self.landing = root / "warehouse", root / "landing"
        shutil.copytree(landing, self.landing)
        self.instance = dg.DagsterInstance.ephemeral()

    def materialize(self, selection: dg.AssetSelection):
        runner = LocalSparkRunner(warehouse_dir=str(self.warehouse), landing_dir=str(self.landing),
                                  spark=LocalSparkServer.from_env())
        return materialize_tables(self.instance, runner, selection, raise_on_error=False)

    def delta(self, name: str) -> DeltaTable:
        return DeltaTable(str(self.warehouse / "main" / Path(*name.split("."))))

    def land_orders(self, change) -> int:
        """Land a new orders file: copies of the landed orders under new keys, through
        `change(pylist) -> pylist`, with the order date as text (as a CSV-fed ingestion tool
        would land it); returns its row count."""
        return land_new_orders(self.landing, change)

    def check(self, name: str) -> dg.AssetCheckEvaluation:
        records = self.instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(ORDERS, name), limit=1
        )
        return records[0].event.dagster_event.event_specific_data


@pytest.fixture
def platform(tmp_path, landing) -> Platform:
    platform = Platform(tmp_path, landing)
    assert platform.materialize(dg.AssetSelection.assets(ORDERS)).success
    return platform


def test_bad_orders_are_quarantined_counted_and_the_rest_loaded(platform):
    def spoil(rows):
        rows[0]["o_orderkey"] = None
        rows[1]["o_orderdate"] = "yesterday"
        return rows

    before = platform.delta("bronze.orders").to_pyarrow_table().num_rows
    landed = platform.land_orders(spoil)

    result = platform.materialize(dg.AssetSelection.assets(ORDERS))

    assert result.success
    [materialization] = result.get_asset_materialization_events()
    assert materialization.materialization.metadata["rejected_rows"].value == 2
    assert platform.delta("bronze.orders").to_pyarrow_table().num_rows == before + landed - 2
    rejected = platform.delta("bronze.orders_rejected").to_pyarrow_table().to_pylist()
    assert sorted(r["_rejected_because"] for r in rejected) == [
        "o_orderdate 'yesterday' is not a date", "o_orderkey is null"
    ]


def test_a_failing_blocking_check_restores_the_table_and_stops_downstream(platform):
    table = platform.delta("bronze.orders")
    version_before, rows_before = table.version(), table.to_pyarrow_table()
    platform.land_orders(lambda rows: rows + [dict(rows[0])])  # one new order twice

    result = platform.materialize(dg.AssetSelection.assets(ORDERS).downstream())

    assert not result.success
    # The job reports what the table now is: the earlier contents, restored as a new version.
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert event.asset_key == ORDERS
    assert (metadata["undone_version"].value, metadata["delta_version"].value) == (
        version_before + 1, version_before + 2
    )
    after = platform.delta("bronze.orders")
    assert [h["operation"] for h in after.history(2)] == ["RESTORE", "WRITE"]
    assert sorted(map(str, after.to_pyarrow_table().to_pylist())) == sorted(map(str, rows_before.to_pylist()))
    started = {e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START}
    assert started == {"main__bronze__orders"}, "silver must not start after a failed blocking check"
    unique = platform.check("unique_o_orderkey")
    assert not unique.passed and unique.metadata["failing_count"].value == 1
    assert unique.metadata["failing_samples"].value[0]["count"] == 2


def test_a_new_file_repeating_an_ingested_key_is_undone(platform):
    table = platform.delta("bronze.orders")
    version_before, rows_before = table.version(), table.to_pyarrow_table().num_rows
    # The first order again, under the key it was ingested with (land_orders moves keys by 1e8s).
    platform.land_orders(lambda rows: [{**rows[0], "o_orderkey": rows[0]["o_orderkey"] % 100_000_000}])

    result = platform.materialize(dg.AssetSelection.assets(ORDERS))

    assert not result.success
    after = platform.delta("bronze.orders")
    assert after.version() == version_before + 2 and after.to_pyarrow_table().num_rows == rows_before
    unique = platform.check("unique_o_orderkey")
    assert not unique.passed and unique.metadata["failing_count"].value == 1
    assert unique.metadata["checked"].value == "the rows appended and the earlier rows sharing their key on their o_orderdate"


def test_a_failing_non_blocking_check_is_reported_and_the_table_lands(platform):
    def unknown_status(rows):
        rows[0]["o_orderstatus"] = "X"
        return rows

    platform.land_orders(unknown_status)

    result = platform.materialize(dg.AssetSelection.assets(ORDERS))

    assert result.success
    accepted = platform.check("accepted_values_o_orderstatus")
    assert not accepted.passed and accepted.severity == dg.AssetCheckSeverity.WARN
    assert accepted.metadata["failing_count"].value == 1
    assert platform.check("unique_o_orderkey").passed


# Jobs in process: the same build_table a job runs, on the test's Spark session.

@pytest.fixture
def warehouse(tmp_path, landing) -> Warehouse:
    own_landing = shutil.copytree(landing, tmp_path / "landing")  # the tests land files in it
    return Warehouse(catalog="main", landing_root=str(own_landing), root=str(tmp_path / "warehouse"),
                     external=frozenset(discover().external))


def test_an_input_that_broke_its_contract_fails_naming_table_and_column(spark, warehouse):
    declarations = discover()
    build_table(spark, warehouse, declarations.tables["bronze.orders"], {}, write_id="run-1")
    # Someone rewrites bronze.orders with o_orderdate as text.
    path = warehouse.location("bronze.orders")
    drifted = spark.read.format("delta").load(path).withColumn("o_orderdate", spark_col_as_string("o_orderdate"))
    drifted.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)

    with pytest.raises(BuildFailed, match=r"main\.silver\.order_lines cannot read input main\.bronze\.orders "
                                           r"at version 1: column o_orderdate is string, expected date"):
        build_table(spark, warehouse, declarations.tables["silver.order_lines"],
                    {"bronze.lineitem": 0, "bronze.customers": 0}, write_id="run-1",
                    declarations=declarations)


def test_a_table_built_with_fewer_columns_than_declared_fails_naming_them_and_the_fix(spark, warehouse):
    orders = discover().tables["bronze.orders"]
    build_table(spark, warehouse, orders, {}, write_id="run-1")
    # As a table built before its declaration gained a column.
    path = warehouse.location("bronze.orders")
    earlier = spark.read.format("delta").load(path).drop("o_comment")
    earlier.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)

    with pytest.raises(BuildFailed, match=r"main\.bronze\.orders at version 1 lacks column\(s\) \['o_comment'\] "
                                           r"that its declaration has: .* --full-refresh"):
        build_table(spark, warehouse, orders, {}, write_id="run-2")


def spark_col_as_string(name: str):
    from pyspark.sql import functions as F

    return F.col(name).cast("string")


# Builds in processes of their own (tests/orders_build_process.py), killed or raced.
# A write stopped mid-flight pauses this long in its first task: the server interrupts the
# operations of a client that died within about 11 s (its settings in resources/spark_server.py),
# well before the pause ends.
PAUSE_SECONDS = 30
# Once its pause ends, a write that was not cancelled commits within 1-3 s here: three times
# that, past the pause.
COMMIT_MARGIN_SECONDS = 10


def start_build(spark_url: str, warehouse: Warehouse, signals: Path, write_id: str, pause: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.orders_build_process", spark_url, warehouse.root, warehouse.landing_root,
         str(signals), str(write_id), str(pause)],
        cwd=PROJECT_DIR, stderr=subprocess.PIPE, text=True,
        # As under a script that started the platform in the background (`make dev &`, many CI
        # runners): the job must still stop on SIGINT.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )


def wait_for_files(signals: Path, prefix: str, count: int, builds: list[subprocess.Popen],
                   timeout: float = 180) -> list[Path]:
    deadline = time.monotonic() + timeout
    while len(found := list(signals.glob(f"{prefix}-*"))) < count:
        ended = [b for b in builds if b.poll() is not None]
        assert not ended, f"a build ended early: {ended[0].stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, f"no {prefix} signal after {timeout} s"
        time.sleep(0.2)
    return found


def comments(warehouse: Warehouse) -> set[str]:
    table = DeltaTable(warehouse.location("bronze.orders")).to_pyarrow_table(columns=["o_comment"])
    return set(table.column("o_comment").to_pylist())


# SIGINT: what Dagster sends a job when its run is terminated (the client interrupts its write);
# SIGKILL: a job that gets no say (the server notices its client is gone).
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["terminated", "killed"])
def test_a_job_stopped_mid_write_commits_nothing_afterwards_and_the_server_carries_on(
    spark, spark_server, warehouse, tmp_path, stop
):
    orders = discover().tables["bronze.orders"]
    before = build_table(spark, warehouse, orders, {}, write_id="run-1")
    new_rows = land_new_orders(Path(warehouse.landing_root))
    signals = tmp_path / "signals"
    signals.mkdir()
    # Left alone, the server would finish this write and commit it 30 s after it started.
    build = start_build(spark_server.ensure_running(), warehouse, signals, write_id="2", pause=PAUSE_SECONDS)
    wait_for_files(signals, "ready", 1, [build])
    (signals / "go").touch()
    [writing] = wait_for_files(signals, "writing", 1, [build])
    pause_ends = time.monotonic() + PAUSE_SECONDS
    worker = psutil.Process(int(writing.name.rsplit("-", 1)[1]))  # the server's Python worker

    os.kill(build.pid, stop)
    build.wait()
    # The write is cancelled on the server. Usually Spark stops the task's Python worker at once:
    # the task can no longer finish. When the task ends before its kill timeout, the worker
    # finishes sleeping and goes idle instead; then, well past the pause, after which a write
    # left alone would commit, nothing may have committed either.
    psutil.wait_procs([worker], timeout=max(0.0, pause_ends + COMMIT_MARGIN_SECONDS - time.monotonic()))

    table = DeltaTable(warehouse.location("bronze.orders"))
    assert table.version() == before.commit.version
    assert "attempt-2" not in comments(warehouse)
    assert table.to_pyarrow_table().num_rows == before.row_count
    # The next build ingests the new file, once.
    after = build_table(spark, warehouse, orders, {}, write_id="run-3")
    assert after.commit.version == before.commit.version + 1
    assert DeltaTable(warehouse.location("bronze.orders")).to_pyarrow_table().num_rows == before.row_count + new_rows


def test_two_writers_at_once_commit_one_after_the_other_or_fail_clearly(spark, spark_server, warehouse, tmp_path):
    orders = discover().tables["bronze.orders"]
    before = build_table(spark, warehouse, orders, {}, write_id="run-1")
    new_rows = land_new_orders(Path(warehouse.landing_root))
    signals = tmp_path / "signals"
    signals.mkdir()

    builds = [start_build(spark_server.ensure_running(), warehouse, signals, write_id=v, pause=5) for v in ("2", "3")]
    wait_for_files(signals, "ready", 2, builds)
    (signals / "go").touch()
    codes = [build.wait(timeout=300) for build in builds]
    errors = [build.stderr.read() for build in builds]

    assert sorted(codes) in ([0, 0], [0, 75]), errors
    # Both found the same new file; it was ingested once, by one of them.
    table = DeltaTable(warehouse.location("bronze.orders"))
    assert table.version() == before.commit.version + 1
    assert len({c for c in comments(warehouse) if c.startswith("attempt-")}) == 1
    assert table.to_pyarrow_table().num_rows == before.row_count + new_rows
    for code, error in zip(codes, errors):
        if code == 75:
            assert "write conflict on main.bronze.orders" in error


class ConflictOnceRunner(LocalSparkRunner):
    """The local runner, except that its first job of the run exits as a job that lost a write
    conflict does (exit code 75), before touching the table."""

    def run(self, context, request):
        if context.retry_number == 0:
            raise dg.Failure("External execution process failed with code 75")
        return super().run(context, request)


def test_a_lost_write_conflict_is_retried_with_backoff_then_succeeds(platform):
    platform.land_orders(lambda rows: rows)
    runner = ConflictOnceRunner(warehouse_dir=str(platform.warehouse), landing_dir=str(platform.landing),
                                spark=LocalSparkServer.from_env())
    table = platform.delta("bronze.orders").version()

    result = materialize_tables(platform.instance, runner, dg.AssetSelection.assets(ORDERS), raise_on_error=False)

    assert result.success
    retries = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert len(retries) == 1 and retries[0].event_specific_data.seconds_to_wait == 15
    assert platform.delta("bronze.orders").version() == table + 1


def test_a_job_failing_for_good_is_not_retried(platform):
    platform.land_orders(lambda rows: rows + [dict(rows[0])])  # the blocking unique check fails

    result = platform.materialize(dg.AssetSelection.assets(ORDERS))

    assert not result.success
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
