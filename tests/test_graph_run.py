"""Whole runs: the graph through the Dagster CLI, then reruns and failures with materialize()."""

import datetime as dt
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from platform_assets.table_assets import table_key
from resources.local_runner import LocalSparkRunner
from resources.paths import PROJECT_DIR
from resources.spark_server import LocalSparkServer
from scripts.setup_local import link_instance_config
from tests.instances import new_home
from tests.landed_files import land_new_orders
from scripts.runs import (
    every_day, format_table_runs, latest_run, materialize, materialize_tables, step_times, table_runs,
)

TABLES = [
    "main.bronze.orders", "main.bronze.lineitem", "main.bronze.customers",
    "main.silver.order_lines", "main.gold.daily_nation_revenue",
]
PARALLEL_JOBS = 2


@dataclass
class Platform:
    instance: dg.DagsterInstance
    warehouse: Path
    landing: str
    first_run_id: str

    def delta(self, table: str, version: int | None = None) -> DeltaTable:
        return DeltaTable(str(self.warehouse.joinpath(*table.split("."))), version=version)

    def latest_metadata(self, table: str) -> dict:
        event = self.instance.get_latest_materialization_event(key(table))
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}

    def first_run_materializations(self) -> dict[str, dg.AssetMaterialization]:
        events = self.instance.all_logs(self.first_run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        return {".".join(e.asset_materialization.asset_key.path): e.asset_materialization for e in events}

    def materialize(self, selection: dg.AssetSelection, landing: str | None = None):
        """Run `selection` in process on local resources, recorded in this platform's instance."""
        runner = LocalSparkRunner(warehouse_dir=str(self.warehouse), landing_dir=landing or self.landing,
                                  spark=LocalSparkServer.from_env())
        return materialize_tables(self.instance, runner, selection, raise_on_error=False)


def key(table: str) -> dg.AssetKey:
    catalog, name = table.split(".", 1)
    return table_key(catalog, name)


@pytest.fixture(scope="module")
def platform(tmp_path_factory, landing) -> Platform:
    """Every table materialized once with `dagster asset materialize --select '*'`."""
    root = tmp_path_factory.mktemp("platform")
    home, warehouse = root / "dagster_home", root / "warehouse"
    landing = str(shutil.copytree(landing, root / "landing"))  # tests land files in it
    link_instance_config(home)
    result = materialize("*", partitions=every_day(), env={
        "DAGSTER_HOME": str(home),
        "PLATFORM_WAREHOUSE_DIR": str(warehouse),
        "PLATFORM_LANDING_DIR": landing,
        # Locally steps run one at a time by default; this run covers the parallel executor.
        "PLATFORM_MAX_PARALLEL_JOBS": str(PARALLEL_JOBS),
    })
    assert result.returncode == 0, result.stderr[-5000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield Platform(instance, warehouse, landing, latest_run(instance).run_id)


def test_gold_matches_an_independent_computation_over_the_landing_files(platform):
    gold = platform.delta("main.gold.daily_nation_revenue").to_pyarrow_table()
    landed = {name: pq.read_table(f"{platform.landing}/{name}") for name in ("orders", "lineitem", "customer")}
    landed["nation"] = DeltaTable(f"{platform.landing}/ingest/nation").to_pyarrow_table()
    expected = duckdb.sql(
        """
        select o_orderdate as order_date, n_name as nation,
               round(sum(l_extendedprice * (1 - l_discount)), 2)::decimal(18,2) as revenue,
               count(distinct o_orderkey) as order_count, count(*) as line_count
        from lineitem join orders on l_orderkey = o_orderkey
        left join customer on o_custkey = c_custkey
        left join nation on c_nationkey = n_nationkey
        group by all
        """,
        connection=_with_tables(landed),
    ).to_arrow_table()

    assert gold.schema.names == ["order_date", "nation", "revenue", "order_count", "line_count"]
    assert gold.schema.field("revenue").type == pa.decimal128(18, 2)
    assert gold.num_rows == expected.num_rows > 0
    assert sorted(gold.to_pylist(), key=_row_key) == sorted(expected.to_pylist(), key=_row_key)


def test_bronze_tables_run_as_many_at_once_as_set_and_silver_after_them(platform):
    times = step_times(platform.instance, platform.first_run_id)
    bronze = [times[f"main__bronze__{t}"] for t in ("orders", "lineitem", "customers")]
    silver_start, silver_end = times["main__silver__order_lines"]
    gold_start, _ = times["main__gold__daily_nation_revenue"]

    assert _most_at_once(bronze) == PARALLEL_JOBS
    assert silver_start >= max(end for _, end in bronze)
    assert gold_start >= silver_end


def test_every_materialization_reports_its_delta_commit(platform):
    materializations = platform.first_run_materializations()
    assert set(materializations) == set(TABLES)

    for table, materialization in materializations.items():
        metadata = {k: v.value for k, v in materialization.metadata.items()}
        version = metadata["delta_version"]
        delta = platform.delta(table, version)
        assert materialization.tags["dagster/data_version"] == str(version)
        assert metadata["dagster/row_count"] == delta.to_pyarrow_table().num_rows
        assert metadata["files_written"] >= 1 and metadata["bytes_written"] > 0
        assert [c.name for c in metadata["dagster/column_schema"].columns] == delta.schema().to_arrow().names
        assert metadata["ran_on"].startswith("local process")
        assert metadata["build_seconds"] > 0
    silver = {k: v.value for k, v in materializations["main.silver.order_lines"].metadata.items()}
    assert silver["input_versions"] == {
        name: materializations[name].metadata["delta_version"].value
        for name in ("main.bronze.orders", "main.bronze.lineitem", "main.bronze.customers")
    }


def test_the_run_summary_has_a_line_per_table_with_the_versions_it_read(platform):
    summary = format_table_runs(table_runs(platform.instance, platform.first_run_id))
    gold = next(line for line in summary.splitlines() if line.startswith("main.gold.daily_nation_revenue"))
    table, version, rows = gold.split()[:3]
    assert (version, int(rows)) == ("0", platform.delta(table, 0).to_pyarrow_table().num_rows)
    assert gold.endswith("main.silver.order_lines@v0")
    assert len(summary.splitlines()) == 2 + len(TABLES)


def test_silver_reads_the_versions_recorded_by_dagster_not_whatever_is_latest(platform, spark):
    orders_before = platform.latest_metadata("main.bronze.orders")["delta_version"]
    lineitem = platform.latest_metadata("main.bronze.lineitem")
    # Another writer appends to bronze.lineitem behind Dagster's back.
    lineitem_path = str(platform.warehouse / "main" / "bronze" / "lineitem")
    spark.read.format("delta").load(lineitem_path).limit(5).write.format("delta").mode("append").save(lineitem_path)
    try:
        land_new_orders(Path(platform.landing), lambda rows: rows[:3])  # orders without line items yet
        rewrite = platform.materialize(dg.AssetSelection.assets(key("main.bronze.orders")))
        rerun = platform.materialize(dg.AssetSelection.assets(key("main.silver.order_lines")))

        assert rewrite.success and rerun.success
        inputs = platform.latest_metadata("main.silver.order_lines")["input_versions"]
        assert inputs["main.bronze.orders"] == orders_before + 1
        assert inputs["main.bronze.lineitem"] == lineitem["delta_version"]
        assert platform.delta("main.bronze.lineitem").version() == lineitem["delta_version"] + 1
        assert platform.latest_metadata("main.silver.order_lines")["dagster/row_count"] == lineitem["dagster/row_count"]
    finally:  # the other tests read this platform: no duplicate line items left behind
        spark.sql(f"RESTORE TABLE delta.`{lineitem_path}` TO VERSION AS OF {lineitem['delta_version']}").collect()


def test_rerunning_days_from_the_cli_replaces_exactly_those_days_with_the_same_rows(platform, spark):
    gold_path = str(platform.warehouse / "main" / "gold" / "daily_nation_revenue")
    before = _gold_rows_by_day(platform)
    day, next_day = sorted(before)[len(before) // 2: len(before) // 2 + 2]  # two days with orders
    # Both days lose their rows behind Dagster's back; a rerun of the first must restore it alone.
    spark.sql(f"DELETE FROM delta.`{gold_path}` WHERE order_date IN ('{day}', '{next_day}')").collect()
    env = {"DAGSTER_HOME": platform.instance.root_directory,
           "PLATFORM_WAREHOUSE_DIR": str(platform.warehouse), "PLATFORM_LANDING_DIR": platform.landing}

    one_day = materialize("main/gold/daily_nation_revenue", env=env, partitions=day)

    assert one_day.returncode == 0, one_day.stderr[-3000:]
    assert _materialized_days(platform) == [day]
    assert _gold_rows_by_day(platform) == {d: rows for d, rows in before.items() if d != next_day}

    both_days = materialize("main/gold/daily_nation_revenue", env=env, partitions=f"{day}...{next_day}")

    assert both_days.returncode == 0, both_days.stderr[-3000:]
    assert _materialized_days(platform) == [d.isoformat() for d in _days(day, next_day)]
    assert _gold_rows_by_day(platform) == before


def test_a_failing_job_keeps_its_table_and_stops_what_depends_on_it(platform, tmp_path):
    landing = _copy_landing(platform.landing, tmp_path)
    landed = pq.read_table(_land_unreadable_line_items(Path(landing, "lineitem")))
    lineitem = platform.delta("main.bronze.lineitem")
    version_before, rows_before = lineitem.version(), lineitem.to_pyarrow_table().num_rows

    result = platform.materialize(
        dg.AssetSelection.assets(key("main.bronze.lineitem")).downstream(), landing=landing
    )

    assert not result.success
    materialized = {".".join(e.asset_key.path) for e in result.get_asset_materialization_events()}
    assert materialized == set()
    lineitem = platform.delta("main.bronze.lineitem")
    assert (lineitem.version(), lineitem.to_pyarrow_table().num_rows) == (version_before, rows_before)
    errors = _errors(platform.instance, result.run_id)
    # lineitem declares FailOnBadRows: the job names the table, the count and a bad value.
    assert f"main.bronze.lineitem: {landed.num_rows} bad rows" in errors
    assert "l_shipdate 'not-a-date' is not a date" in errors and "jobs/runtime.py" in errors


def test_each_job_of_a_run_in_one_process_has_its_own_process_and_none_outlives_the_run(platform):
    bronze = [key(f"main.bronze.{t}") for t in ("orders", "lineitem", "customers")]

    result = platform.materialize(dg.AssetSelection.assets(*bronze))

    assert result.success
    # The runner starts each next job's process while a job runs (resources/job_processes.py).
    ran_on = [e.materialization.metadata["ran_on"].value for e in result.get_asset_materialization_events()]
    assert len(ran_on) == 3 and len({place.split()[2] for place in ran_on}) == 3
    assert _waiting_job_processes() == []


def test_a_runs_first_job_runs_in_the_process_made_ready_before_the_run(platform):
    runner = LocalSparkRunner(warehouse_dir=str(platform.warehouse), landing_dir=platform.landing,
                              spark=LocalSparkServer.from_env())
    runner.prepare()  # what make demo and make update do before each run
    [ready] = _waiting_job_processes()

    result = platform.materialize(dg.AssetSelection.assets(key("main.bronze.orders")))

    assert result.success
    [event] = result.get_asset_materialization_events()
    assert event.materialization.metadata["ran_on"].value.split()[2] == str(ready.pid)
    assert _waiting_job_processes() == []


def _waiting_job_processes() -> list[psutil.Process]:
    waiting = []
    for process in psutil.Process().children(recursive=True):
        try:
            if "--wait-for-job" in process.cmdline():
                waiting.append(process)
        except psutil.Error:
            pass  # it ended (or is a zombie): not running
    return waiting


def test_missing_landing_files_fail_with_the_path(platform, tmp_path):
    landing = _copy_landing(platform.landing, tmp_path)
    shutil.rmtree(f"{landing}/customer")

    result = platform.materialize(dg.AssetSelection.assets(key("main.bronze.customers")), landing=landing)

    assert not result.success
    assert f"no *.parquet in {landing}/customer" in _errors(platform.instance, result.run_id)


def test_a_missing_external_table_fails_naming_it_and_where_it_was_expected(platform, tmp_path):
    landing = _copy_landing(platform.landing, tmp_path)
    shutil.rmtree(f"{landing}/ingest/nation")

    result = platform.materialize(dg.AssetSelection.assets(key("main.bronze.customers")), landing=landing)

    assert not result.success
    assert (f"external table main.ingest.nation does not exist at {landing}/ingest/nation"
            in _errors(platform.instance, result.run_id))


def _land_unreadable_line_items(lineitem_dir: Path) -> Path:
    """Land a new line item file whose ship dates do not parse; returns its path."""
    landed = pq.read_table(sorted(lineitem_dir.glob("*.parquet"))[0]).slice(0, 20)
    bad_dates = pa.array(["not-a-date"] * landed.num_rows, pa.string())
    shipdate = landed.schema.get_field_index("l_shipdate")
    staged, path = lineitem_dir.parent / ".unreadable.parquet", lineitem_dir / "lineitem.unreadable.parquet"
    pq.write_table(landed.set_column(shipdate, "l_shipdate", bad_dates), staged)
    staged.rename(path)
    return path


def _copy_landing(landing: str, tmp_path: Path) -> str:
    copy = tmp_path / "landing"
    shutil.copytree(landing, copy)
    return str(copy)


def _errors(instance: dg.DagsterInstance, run_id: str) -> str:
    """Every error the run's event log holds, with tracebacks, as one text."""
    texts = []
    for entry in instance.all_logs(run_id):
        data = getattr(entry.dagster_event, "event_specific_data", None)
        error = getattr(data, "error", None)
        if error is not None:
            texts.append(error.to_string())
    return "\n".join(texts)


def _with_tables(tables: dict[str, pa.Table]) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    for name, table in tables.items():
        connection.register(name, table)
    return connection


def _row_key(row: dict) -> tuple:
    return (row["order_date"], row["nation"] or "")


def test_reexecuting_a_failed_run_from_failure_reruns_only_the_failed_table_and_downstream(platform, tmp_path):
    env = {**os.environ, "DAGSTER_HOME": platform.instance.root_directory,
           "PLATFORM_WAREHOUSE_DIR": str(platform.warehouse)}

    failed, reexecution = _fail_then_reexecute(platform.landing, tmp_path, env, platform.instance)

    assert reexecution.parent_run_id == failed.run_id
    assert set(step_times(platform.instance, reexecution.run_id)) == {
        "main__bronze__lineitem", "main__silver__order_lines", "main__gold__daily_nation_revenue"
    }


def test_reexecuting_from_failure_on_a_postgresql_instance(landing, tmp_path, request):
    home = new_home(tmp_path, "postgres", request)
    env = {**os.environ, **home.env, "DAGSTER_HOME": str(home.path), "PLATFORM_WAREHOUSE_DIR": str(tmp_path / "warehouse")}

    with home.instance() as instance:
        failed, reexecution = _fail_then_reexecute(landing, tmp_path, env, instance)

        assert reexecution.parent_run_id == failed.run_id and reexecution.status == dg.DagsterRunStatus.SUCCESS
        # The failed run built orders and customers: the re-execution did not build them again.
        assert set(step_times(instance, reexecution.run_id)) == {
            "main__bronze__lineitem", "main__silver__order_lines", "main__gold__daily_nation_revenue"
        }


def _fail_then_reexecute(landing: str, tmp_path: Path, env: dict[str, str],
                         instance: dg.DagsterInstance) -> tuple[dg.DagsterRun, dg.DagsterRun]:
    """A run of every table over every day that fails on an unreadable line item file, then,
    with the file gone, `scripts.reexecute` of it: (the failed run, its re-execution)."""
    landing = _copy_landing(landing, tmp_path)
    env = {**env, "PLATFORM_LANDING_DIR": landing}
    unreadable = _land_unreadable_line_items(Path(landing, "lineitem"))
    assert materialize("*", env=env, partitions=every_day()).returncode != 0
    failed = latest_run(instance)
    unreadable.unlink()  # the landing data is fixed

    rerun = subprocess.run([sys.executable, "-m", "scripts.reexecute", failed.run_id],
                           cwd=PROJECT_DIR, env=env, capture_output=True, text=True)

    assert rerun.returncode == 0, rerun.stderr[-3000:]
    return failed, latest_run(instance)


def _gold_rows_by_day(platform: Platform) -> dict[str, list[tuple]]:
    rows: dict[str, list[tuple]] = {}
    for row in platform.delta("main.gold.daily_nation_revenue").to_pyarrow_table().to_pylist():
        rows.setdefault(row["order_date"].isoformat(), []).append(tuple(row.values()))
    return {day: sorted(day_rows) for day, day_rows in rows.items()}


def _materialized_days(platform: Platform) -> list[str]:
    """The days of gold that the latest run materialized."""
    run = latest_run(platform.instance)
    events = platform.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    return sorted(e.asset_materialization.partition for e in events)


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most spans (start, end) in progress at one moment."""
    changes = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running, most = 0, 0
    for _, change in changes:  # at equal times an end (-1) sorts first: touching is not overlapping
        running += change
        most = max(most, running)
    return most


def _days(first: str, last: str) -> list[dt.date]:
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]


def test_a_job_can_run_in_a_spark_of_its_own_and_builds_the_same_table(platform, tmp_path):
    # PLATFORM_SPARK_MODE=process: the job starts (and stops) a Spark in its own JVM instead of
    # connecting to the warm server.
    runner = LocalSparkRunner(warehouse_dir=str(tmp_path / "warehouse"), landing_dir=platform.landing,
                              spark=LocalSparkServer.from_env(), spark_mode="process")

    result = materialize_tables(dg.DagsterInstance.ephemeral(), runner, [key("main.bronze.orders")])

    assert result.success
    own = DeltaTable(str(tmp_path / "warehouse" / "main" / "bronze" / "orders")).to_pyarrow_table()
    shared = platform.delta("main.bronze.orders").to_pyarrow_table()
    assert own.sort_by("o_orderkey").to_pylist() == shared.sort_by("o_orderkey").to_pylist()
