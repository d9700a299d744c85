"""The Databricks target: every table a Databricks run, against the local workspace emulator.

The real databricks-sdk and dagster-databricks clients talk HTTP to the emulator, which runs
each submitted task as a local process with local Spark.
"""

import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from deltalake import DeltaTable

from jobs.registry import build_order, discover
from jobs.runtime import build_table
from jobs.warehouse import Warehouse
from scripts.runs import materialize_tables
from platform_assets.table_assets import table_key
from resources.databricks_runner import DatabricksCompute
from resources.job_package import build_job_package
from scripts.emulated_workspace import emulated_runner, start_emulator
from scripts.setup_local import link_instance_config

TOKEN = "dapi-emulator-0123456789abcdef"
ORDERS = table_key("main", "bronze.orders")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = start_emulator(tmp_path_factory.mktemp("workspace"), TOKEN)
    ws.add_cluster("0101-shared-cluster", spark_version="17.3.x-scala2.13")
    yield ws
    ws.stop()


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    """An instance of the module's own with the project's dagster.yaml."""
    home = tmp_path_factory.mktemp("dagster_home")
    link_instance_config(home)
    with dg.DagsterInstance.from_config(str(home)) as test_instance:
        yield test_instance


@pytest.fixture(scope="module")
def credentials(workspace):
    """DATABRICKS_HOST / DATABRICKS_TOKEN for this module only (and no other DATABRICKS_*)."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("DATABRICKS_")}
    for name in saved:
        del os.environ[name]
    os.environ |= {"DATABRICKS_HOST": workspace.host, "DATABRICKS_TOKEN": TOKEN}
    yield
    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(saved)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("databricks_warehouse")


def materialize(instance, runner, selection=None):
    return materialize_tables(instance, runner, selection, raise_on_error=False)


def uploads_of(workspace, name: str) -> int:
    """Uploads of a file called `name` to a volume (one Files API PUT each)."""
    return sum(
        1 for request in workspace.requests
        if request.method == "PUT" and request.path.startswith("/api/2.0/fs/files/Volumes/")
        and request.path.endswith(f"/{name}")
    )


@dataclass
class GraphRun:
    result: dg.ExecuteInProcessResult
    runs_started: int
    submit_calls: int


@pytest.fixture(scope="module")
def graph_run(workspace, instance, credentials, warehouse, landing) -> GraphRun:
    """Every table materialized on the Databricks target, through a 503 on runs/get and a
    429 on runs/submit answered after the run was already created."""
    workspace.faults.http_error("POST", "/api/2.2/jobs/runs/submit", status=429, after_handling=True)
    workspace.faults.http_error("GET", "/api/2.2/jobs/runs/get", status=503)
    runs_before, requests_before = len(workspace.runs), len(workspace.requests)
    result = materialize(instance, emulated_runner(warehouse, landing))
    assert result.success, _errors(instance, result.run_id)
    return GraphRun(
        result=result,
        runs_started=len(workspace.runs) - runs_before,
        submit_calls=sum(
            1 for r in workspace.requests[requests_before:] if r.path == "/api/2.2/jobs/runs/submit"
        ),
    )


def test_every_table_becomes_one_databricks_run_with_the_local_targets_contents(
    graph_run, warehouse, landing, spark, tmp_path
):
    # The submit whose answer was lost was sent again with its idempotency token: no 6th run.
    assert (graph_run.runs_started, graph_run.submit_calls) == (5, 6)

    declarations = discover()
    tables = declarations.tables
    local = Warehouse(catalog="main", landing_root=landing, root=str(tmp_path / "local"),
                      external=frozenset(declarations.external))
    for name in build_order(tables):
        build_table(spark, local, tables[name], {}, write_id="local")
        on_databricks = DeltaTable(str(warehouse / "main" / Path(*name.split(".")))).to_pyarrow_table()
        locally = DeltaTable(local.location(name)).to_pyarrow_table()
        assert on_databricks.schema == locally.schema, name
        assert sorted(on_databricks.to_pylist(), key=str) == sorted(locally.to_pylist(), key=str), name


def test_materializations_carry_the_run_id_url_and_the_same_metadata_as_locally(graph_run):
    for event in graph_run.result.get_asset_materialization_events():
        metadata = {k: v.value for k, v in event.materialization.metadata.items()}
        assert metadata["Databricks Job Run ID"].isdigit()
        assert "/run/" in metadata["Databricks Job Run URL"]
        assert metadata["ran_on"].startswith("Databricks")
        assert {"delta_version", "dagster/row_count", "input_versions", "dagster/column_schema",
                "files_written", "bytes_written", "build_seconds"} <= set(metadata)


def test_the_jobs_stdout_reaches_the_dagster_logs(workspace, instance, credentials, warehouse, landing, capfd):
    result = materialize(instance, emulated_runner(warehouse, landing), selection=[ORDERS])

    assert result.success
    assert "main.bronze.orders: building on Spark 4.2.0, inputs pinned at {}" in capfd.readouterr().out


def test_an_unchanged_job_package_is_not_uploaded_again(graph_run, workspace, instance, warehouse, landing):
    wheel_name = build_job_package().wheel.name
    assert uploads_of(workspace, wheel_name) == 1

    assert materialize(instance, emulated_runner(warehouse, landing), selection=[ORDERS]).success
    assert uploads_of(workspace, wheel_name) == 1


def test_a_failed_databricks_run_fails_the_asset_with_its_state_message(
    graph_run, workspace, instance, warehouse, landing
):
    version_before = DeltaTable(str(warehouse / "main/bronze/orders")).version()
    workspace.faults.next_run_fails("Cluster terminated. Reason: Spot instance lost")

    result = materialize(instance, emulated_runner(warehouse, landing), selection=[ORDERS])

    assert not result.success
    assert "Spot instance lost" in _errors(instance, result.run_id)
    assert DeltaTable(str(warehouse / "main/bronze/orders")).version() == version_before


def test_terminating_the_dagster_run_cancels_the_databricks_run_and_fails_the_step(
    graph_run, workspace, instance, warehouse, landing
):
    workspace.faults.next_run_hangs()
    runs_before = set(workspace.runs)

    def interrupt_once_running():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            new = [workspace.runs[i] for i in set(workspace.runs) - runs_before]
            if new and new[0].life_cycle_state == "RUNNING":
                os.kill(os.getpid(), signal.SIGINT)  # what a Dagster termination does to a step
                return
            time.sleep(0.1)

    threading.Thread(target=interrupt_once_running, daemon=True).start()
    result = materialize(instance, emulated_runner(warehouse, landing), selection=[ORDERS])

    assert not result.success
    (run_id,) = set(workspace.runs) - runs_before
    assert workspace.runs[run_id].result_state == "CANCELED"
    assert f"Databricks run {run_id} was cancelled" in _errors(instance, result.run_id)


def test_an_existing_cluster_gets_the_pipes_bootstrap_as_arguments_and_dbfs_libraries(
    graph_run, workspace, instance, warehouse, landing
):
    runner = emulated_runner(
        warehouse, landing,
        artifacts_dir="dbfs:/FileStore/platform/jobs",
        compute_by_table={"bronze.orders": DatabricksCompute(existing_cluster_id="0101-shared-cluster")},
    )
    runs_before = set(workspace.runs)

    result = materialize(instance, runner, selection=[ORDERS])

    assert result.success, _errors(instance, result.run_id)
    (run_id,) = set(workspace.runs) - runs_before
    task = workspace.runs[run_id].submitted["tasks"][0]
    assert task["existing_cluster_id"] == "0101-shared-cluster" and "new_cluster" not in task
    assert "--dagster-pipes-context" in task["spark_python_task"]["parameters"]
    wheel = build_job_package().wheel.name
    assert task["libraries"] == [{"whl": f"dbfs:/FileStore/platform/jobs/{wheel}"}]
    shipped = sorted(p.name for p in (workspace.dbfs_root / "FileStore/platform/jobs").iterdir())
    assert shipped == sorted([wheel, build_job_package().launcher.name])  # no staging copies left


def test_serverless_ships_the_package_and_pipes_files_through_a_volume(
    graph_run, workspace, instance, warehouse, landing
):
    runner = emulated_runner(
        warehouse, landing,
        compute=DatabricksCompute(serverless=True),
        artifacts_dir="/Volumes/main/platform/artifacts",
        pipes_volume="/Volumes/main/platform/pipes",
    )
    runs_before = set(workspace.runs)

    result = materialize(instance, runner, selection=[ORDERS])

    assert result.success, _errors(instance, result.run_id)
    (run_id,) = set(workspace.runs) - runs_before
    submitted = workspace.runs[run_id].submitted
    assert submitted["tasks"][0]["environment_key"] == "platform"
    (environment,) = submitted["environments"]
    assert environment["spec"]["dependencies"] == [
        f"/Volumes/main/platform/artifacts/{build_job_package().wheel.name}"
    ]


def test_the_token_never_reaches_dagsters_storage(graph_run, workspace, instance):
    stored = []
    for run in instance.get_runs():
        stored.append(repr(run))  # run config, tags, everything stored with the run
        stored.extend(repr(entry) for entry in instance.all_logs(run.run_id))
    assert stored and not any(TOKEN in text for text in stored)
    assert workspace.requests_containing(TOKEN) == []


def _errors(instance: dg.DagsterInstance, run_id: str) -> str:
    texts = []
    for entry in instance.all_logs(run_id):
        error = getattr(getattr(entry.dagster_event, "event_specific_data", None), "error", None)
        if error is not None:
            texts.append(error.to_string())
    return "\n".join(texts)
