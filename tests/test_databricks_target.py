"""The Databricks target: a Dagster run's tables as the tasks of one Databricks job run,
against the local workspace emulator.

The real databricks-sdk and dagster-databricks talk HTTP to the emulator, which runs each
task as a local process with the warm local Spark server as its cluster's Spark.
"""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml
from databricks.sdk import WorkspaceClient
from deltalake import DeltaTable

from jobs.registry import build_order, discover
from jobs.runtime import build_table
from jobs.warehouse import Warehouse
from resources.databricks_shared_run import SharedRun, check_package
from resources.paths import PROJECT_DIR
from scripts.runs import every_day, latest_run, materialize_command, materialize_tables
from scripts.runs import materialize as cli_materialize
from platform_assets.table_assets import table_key
from resources.databricks_runner import DatabricksCompute
from resources.job_package import build_job_package
from scripts.emulated_workspace import ARTIFACTS_DIR, PIPES_VOLUME, emulated_runner, emulated_settings, start_emulator
from scripts.setup_local import link_instance_config
from tests.landed_files import land_new_orders

TOKEN = "dapi-emulator-0123456789abcdef"
# A CLI run of one table takes 30-60 s on 2 cores (two at once: up to 90 s); three times that.
CLI_RUN_BOUND_SECONDS = 300
ORDERS = table_key("main", "bronze.orders")
TASKS = ["bronze__orders", "bronze__lineitem", "bronze__customers", "silver__order_lines",
         "gold__daily_nation_revenue"]


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
    run_now_calls: int
    cluster_starts: int

    @property
    def databricks_run(self) -> int:
        return shared_run_of(self.result.dagster_run).run_id


def shared_run_of(run: dg.DagsterRun) -> SharedRun:
    return SharedRun.from_tags(run.tags)


def new_runs(workspace, before: set) -> list:
    return [workspace.runs[i] for i in sorted(set(workspace.runs) - before)]


@pytest.fixture(scope="module")
def graph_run(workspace, instance, credentials, warehouse, landing) -> GraphRun:
    """Every table materialized on the Databricks target, through a 503 on runs/get and a
    503 on run-now answered after the run had started."""
    workspace.faults.http_error("POST", "/api/2.2/jobs/run-now", status=503, after_handling=True)
    workspace.faults.http_error("GET", "/api/2.2/jobs/runs/get", status=503)
    runs_before, requests_before = len(workspace.runs), len(workspace.requests)
    starts_before = workspace.cluster_start_count
    result = materialize(instance, emulated_runner(warehouse, landing))
    assert result.success, _errors(instance, result.run_id)
    return GraphRun(
        result=result,
        runs_started=len(workspace.runs) - runs_before,
        run_now_calls=sum(1 for r in workspace.requests[requests_before:] if r.path == "/api/2.2/jobs/run-now"),
        cluster_starts=workspace.cluster_start_count - starts_before,
    )


@pytest.fixture(scope="module")
def local_build(spark, landing, tmp_path_factory) -> Warehouse:
    """Every table built by the local job code, in one session: what the Databricks target must equal."""
    declarations = discover()
    local = Warehouse(catalog="main", landing_root=landing, root=str(tmp_path_factory.mktemp("local")),
                      external=frozenset(declarations.external))
    for name in build_order(declarations.tables):
        build_table(spark, local, declarations.tables[name], {}, write_id="local")
    return local


def assert_same_contents(warehouse: Path, local: Warehouse, names) -> None:
    for name in names:
        on_databricks = DeltaTable(str(warehouse / "main" / Path(*name.split(".")))).to_pyarrow_table()
        locally = DeltaTable(local.location(name)).to_pyarrow_table()
        assert on_databricks.schema == locally.schema, name
        assert sorted(on_databricks.to_pylist(), key=str) == sorted(locally.to_pylist(), key=str), name


def test_the_whole_graph_is_one_databricks_run_of_five_tasks_on_one_cluster(
    graph_run, workspace, warehouse, local_build
):
    # The run-now whose answer was lost was sent again with its idempotency token: one run.
    assert (graph_run.runs_started, graph_run.run_now_calls) == (1, 2)
    assert graph_run.cluster_starts == 1
    run = workspace.runs[graph_run.databricks_run]
    assert run.run_type == "JOB_RUN"
    assert sorted(t.task_key for t in run.tasks) == sorted(TASKS)
    assert {t.result_state for t in run.tasks} == {"SUCCESS"}
    assert_same_contents(warehouse, local_build, discover().tables)


def test_the_deployment_manages_one_job_named_after_the_code_location_and_itself(graph_run, workspace, credentials):
    client = WorkspaceClient(host=workspace.host, token=TOKEN)
    (job,) = client.jobs.list(name="platform_assets.definitions [test]", expand_tasks=True)
    settings = job.settings
    assert [c.job_cluster_key for c in settings.job_clusters] == ["cluster_1"]
    by_key = {t.task_key: t for t in settings.tasks}
    assert {t.job_cluster_key for t in by_key.values()} == {"cluster_1"}
    assert sorted(d.task_key for d in by_key["silver__order_lines"].depends_on) == [
        "bronze__customers", "bronze__lineitem", "bronze__orders"]
    assert [d.task_key for d in by_key["gold__daily_nation_revenue"].depends_on] == ["silver__order_lines"]


def test_a_changed_compute_resets_the_same_job(graph_run, workspace, instance, warehouse, landing):
    client = WorkspaceClient(host=workspace.host, token=TOKEN)
    (before,) = client.jobs.list(name="platform_assets.definitions [test]")
    runner = emulated_runner(warehouse, landing, compute_by_table={
        "silver.order_lines": DatabricksCompute(node_type_id="emulated", num_workers=4)})

    assert materialize(instance, runner, selection=[ORDERS]).success

    (after,) = client.jobs.list(name="platform_assets.definitions [test]", expand_tasks=True)
    assert after.job_id == before.job_id
    by_key = {t.task_key: t for t in after.settings.tasks}
    assert by_key["silver__order_lines"].job_cluster_key != by_key["bronze__orders"].job_cluster_key
    assert len(after.settings.job_clusters) == 2


def test_materializations_carry_the_run_id_url_and_the_same_metadata_as_locally(graph_run):
    for event in graph_run.result.get_asset_materialization_events():
        metadata = {k: v.value for k, v in event.materialization.metadata.items()}
        assert metadata["Databricks Job Run ID"] == str(graph_run.databricks_run)
        assert "/run/" in metadata["Databricks Job Run URL"]
        assert metadata["ran_on"].startswith("Databricks")
        assert {"delta_version", "dagster/row_count", "input_versions", "dagster/column_schema",
                "files_written", "bytes_written", "build_seconds"} <= set(metadata)


def test_downstream_tasks_read_the_versions_their_upstream_tasks_wrote_in_the_run(graph_run):
    materializations = {event.asset_key: event.materialization
                        for event in graph_run.result.get_asset_materialization_events()}
    silver = materializations[table_key("main", "silver.order_lines")].metadata
    for name in ("bronze.orders", "bronze.lineitem", "bronze.customers"):
        written = materializations[table_key("main", name)].metadata["delta_version"].value
        assert silver["input_versions"].value[f"main.{name}"] == written


def test_a_one_table_selection_runs_only_that_task_and_its_output_reaches_the_logs(
    graph_run, workspace, instance, warehouse, landing, capfd
):
    before, starts_before = set(workspace.runs), workspace.cluster_start_count

    result = materialize(instance, emulated_runner(warehouse, landing), selection=[ORDERS])

    assert result.success, _errors(instance, result.run_id)
    (run,) = new_runs(workspace, before)
    assert [t.task_key for t in run.tasks] == ["bronze__orders"]
    assert workspace.cluster_start_count - starts_before == 1
    assert "main.bronze.orders: building on Spark 4.2.0, inputs pinned at {}" in capfd.readouterr().out


def test_an_unchanged_job_package_is_not_uploaded_again(graph_run, workspace, instance, warehouse, landing):
    wheel_name = build_job_package().wheel.name
    uploads = uploads_of(workspace, wheel_name)

    assert materialize(instance, emulated_runner(warehouse, landing), selection=[ORDERS]).success
    assert uploads_of(workspace, wheel_name) == uploads == 1


def test_a_failed_databricks_run_fails_the_asset_with_its_state_message(
    graph_run, workspace, instance, warehouse, landing
):
    version_before = DeltaTable(str(warehouse / "main/bronze/orders")).version()
    workspace.faults.next_run_fails("Cluster terminated. Reason: Spot instance lost")

    result = materialize(instance, emulated_runner(warehouse, landing), selection=[ORDERS])

    assert not result.success
    assert "Spot instance lost" in _errors(instance, result.run_id)
    assert DeltaTable(str(warehouse / "main/bronze/orders")).version() == version_before


def test_reexecuting_a_run_whose_silver_task_failed_repairs_the_same_databricks_run(
    graph_run, workspace, instance, credentials, warehouse, landing, local_build, tmp_path
):
    """Through the CLI, as a user runs it: the whole graph, silver's task fails, and
    `scripts.reexecute` reruns silver and gold inside the same Databricks run."""
    env = cli_env(instance, warehouse, landing, tmp_path)
    bronze_versions = {t: DeltaTable(str(warehouse / "main/bronze" / t)).version()
                       for t in ("orders", "lineitem", "customers")}
    workspace.faults.next_task_fails("silver__order_lines", "Injected: executor lost")

    assert cli_materialize("*", env=env, partitions=every_day()).returncode != 0
    failed = latest_run(instance)
    shared = shared_run_of(failed)
    run = workspace.runs[shared.run_id]
    assert {t.task_key: t.result_state for t in run.latest_tasks()} == {
        **{f"bronze__{t}": "SUCCESS" for t in ("orders", "lineitem", "customers")},
        "silver__order_lines": "FAILED", "gold__daily_nation_revenue": "UPSTREAM_FAILED"}
    assert set(_materialized(instance, failed.run_id)) == {f"main.bronze.{t}" for t in ("orders", "lineitem", "customers")}
    # runs/get says only that the task failed; its runs/get-output says why.
    assert "task silver__order_lines of Databricks run" in _errors(instance, failed.run_id)
    assert "Injected: executor lost" in _errors(instance, failed.run_id)
    starts_before = workspace.cluster_start_count
    # The repair is made, but its answer is lost; the SDK sends it again, and Databricks refuses
    # a second repair of a run that is running again. The step adopts the repair that was made.
    workspace.faults.http_error("POST", "/api/2.2/jobs/runs/repair", status=503, after_handling=True)

    rerun = subprocess.run([sys.executable, "-m", "scripts.reexecute", failed.run_id],
                           cwd=PROJECT_DIR, env=env, capture_output=True, text=True)

    assert rerun.returncode == 0, rerun.stderr[-3000:]
    reexecution = latest_run(instance)
    assert shared_run_of(reexecution).run_id == shared.run_id
    assert set(_materialized(instance, reexecution.run_id)) == {"main.silver.order_lines", "main.gold.daily_nation_revenue"}
    attempts = Counter(t.task_key for t in run.tasks)
    assert attempts == {"bronze__orders": 1, "bronze__lineitem": 1, "bronze__customers": 1,
                        "silver__order_lines": 2, "gold__daily_nation_revenue": 2}
    assert run.result_state == "SUCCESS" and workspace.cluster_start_count - starts_before == 1
    assert len(run.executions) == 2  # one repair, though runs/repair was sent twice
    # Bronze was not rebuilt. In the failed run's first pass customers (a merge) made one new
    # version; orders and line items found no new landing files and made none.
    assert {t: DeltaTable(str(warehouse / "main/bronze" / t)).version() for t in bronze_versions} == {
        **bronze_versions, "customers": bronze_versions["customers"] + 1}
    assert_same_contents(warehouse, local_build, ["silver.order_lines", "gold.daily_nation_revenue"])


def test_a_failed_blocking_check_ends_the_dependent_tasks_instead_of_leaving_them_waiting(
    graph_run, workspace, instance, warehouse, landing, tmp_path
):
    duplicated = Path(shutil.copytree(landing, tmp_path / "landing"))
    land_new_orders(duplicated, lambda rows: rows + [dict(rows[0])])  # the blocking unique check fails
    before = set(workspace.runs)

    result = materialize(instance, emulated_runner(warehouse, str(duplicated)))

    assert not result.success
    (run,) = new_runs(workspace, before)
    run.wait(timeout=60)  # the tasks' own wait for a context would be 30 minutes
    ended = {t.task_key: t for t in run.latest_tasks()}
    assert ended["bronze__orders"].result_state == "SUCCESS"  # its job ran; Dagster failed the check
    # Line items read orders: their task ends first, and what reads them after it.
    assert ended["bronze__lineitem"].result_state == "FAILED"
    client = WorkspaceClient(host=workspace.host, token=TOKEN)
    why = client.jobs.get_run_output(ended["bronze__lineitem"].run_id).error
    assert "blocking check(s) ['unique_o_orderkey'] of main.bronze.orders failed" in why
    assert ended["silver__order_lines"].result_state == ended["gold__daily_nation_revenue"].result_state == "UPSTREAM_FAILED"


def test_terminating_the_dagster_run_cancels_every_task_of_the_databricks_run(
    graph_run, workspace, instance, warehouse, landing
):
    workspace.faults.next_run_hangs()
    before = set(workspace.runs)

    interrupt_once_running(workspace, before)
    result = materialize(instance, emulated_runner(warehouse, landing))

    assert not result.success
    (run,) = new_runs(workspace, before)
    run.wait(timeout=30)
    assert run.result_state == "CANCELED"
    assert len(run.tasks) == 5 and {t.result_state for t in run.tasks} == {"CANCELED"}
    assert f"Databricks run {run.run_id} was cancelled" in _errors(instance, result.run_id)


def test_terminating_the_dagster_run_cancels_the_tables_own_run_with_run_per_table(
    graph_run, workspace, instance, warehouse, landing
):
    workspace.faults.next_run_hangs()
    before = set(workspace.runs)

    interrupt_once_running(workspace, before)
    result = materialize(instance, emulated_runner(warehouse, landing, run_per_table=True), selection=[ORDERS])

    assert not result.success
    (run,) = new_runs(workspace, before)
    run.wait(timeout=30)
    assert run.result_state == "CANCELED"
    assert f"Databricks run {run.run_id} ended CANCELED, cancelled because the Dagster run was terminated" in _errors(
        instance, result.run_id)


def interrupt_once_running(workspace, before: set) -> None:
    """Interrupt this process, as a Dagster termination interrupts a step, once the first new
    Databricks run is running."""
    def interrupt():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            started = new_runs(workspace, before)
            if started and started[0].life_cycle_state == "RUNNING":
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.1)

    threading.Thread(target=interrupt, daemon=True).start()


def test_an_existing_cluster_runs_every_task_and_starts_none(
    graph_run, workspace, instance, warehouse, landing
):
    runner = emulated_runner(warehouse, landing, compute=DatabricksCompute(existing_cluster_id="0101-shared-cluster"))
    before, starts_before = set(workspace.runs), workspace.cluster_start_count

    result = materialize(instance, runner, selection=[ORDERS])

    assert result.success, _errors(instance, result.run_id)
    (run,) = new_runs(workspace, before)
    assert workspace.cluster_start_count == starts_before
    (task,) = run.tasks
    assert task.spec["existing_cluster_id"] == "0101-shared-cluster" and "job_cluster_key" not in task.spec
    assert not run.submitted.get("job_clusters")  # the job's settings: no job cluster at all
    assert task.spec["libraries"] == [{"whl": f"{ARTIFACTS_DIR}/{build_job_package().wheel.name}"}]


def test_serverless_runs_the_tasks_on_its_environment(
    graph_run, workspace, instance, warehouse, landing
):
    runner = emulated_runner(warehouse, landing, compute=DatabricksCompute(serverless=True))
    before, starts_before = set(workspace.runs), workspace.cluster_start_count

    result = materialize(instance, runner, selection=[ORDERS])

    assert result.success, _errors(instance, result.run_id)
    (run,) = new_runs(workspace, before)
    (task,) = run.tasks
    assert task.spec["environment_key"] == "platform" and workspace.cluster_start_count == starts_before
    (environment,) = run.submitted["environments"]
    assert environment["spec"]["dependencies"] == [
        f"{ARTIFACTS_DIR}/{build_job_package().wheel.name}"
    ]
    folder = f"/api/2.0/fs/files{PIPES_VOLUME}/shared_runs/{run.run_id}/{task.run_id}/"
    assert [r.method for r in workspace.requests if r.path == folder + "context.json"] == ["PUT", "DELETE"]


def test_run_per_table_keeps_one_submitted_run_with_its_own_cluster_per_table(
    graph_run, workspace, instance, warehouse, landing
):
    workspace.faults.http_error("POST", "/api/2.2/jobs/runs/submit", status=429, after_handling=True)
    before, requests_before = set(workspace.runs), len(workspace.requests)

    result = materialize(instance, emulated_runner(warehouse, landing, run_per_table=True), selection=[ORDERS])

    assert result.success, _errors(instance, result.run_id)
    # The submit whose answer was lost was sent again with its idempotency token: one run.
    (run,) = new_runs(workspace, before)
    assert sum(1 for r in workspace.requests[requests_before:] if r.path == "/api/2.2/jobs/runs/submit") == 2
    assert run.run_type == "SUBMIT_RUN" and "new_cluster" in run.submitted["tasks"][0]


def test_two_deployments_sharing_a_workspace_run_at_once_each_its_own_job_and_package(
    graph_run, workspace, instance, landing, tmp_path
):
    client = WorkspaceClient(host=workspace.host, token=TOKEN)
    before = set(workspace.runs)
    processes = {}
    for deployment in ("dev", "prod"):
        (tmp_path / deployment).mkdir()
        env = cli_env(instance, tmp_path / deployment / "warehouse", landing, tmp_path / deployment,
                      deployment=deployment, artifacts_dir=f"/Volumes/main/{deployment}/artifacts")
        processes[deployment] = subprocess.Popen(materialize_command("main/bronze/orders"), cwd=PROJECT_DIR, env=env,
                                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    for deployment, process in processes.items():
        assert process.wait(timeout=CLI_RUN_BOUND_SECONDS) == 0, process.stderr.read()[-3000:]
    for deployment in ("dev", "prod"):
        (job,) = client.jobs.list(name=f"platform_assets.definitions [{deployment}]")
        (run,) = [r for r in new_runs(workspace, before) if r.job_id == job.job_id]
        (task,) = run.tasks
        assert task.spec["libraries"] == [{"whl": f"/Volumes/main/{deployment}/artifacts/{build_job_package().wheel.name}"}]
        assert DeltaTable(str(tmp_path / deployment / "warehouse/main/bronze/orders")).version() >= 0


def test_a_run_whose_job_another_version_of_the_code_reset_is_cancelled_and_says_so(
    graph_run, workspace, instance, warehouse, landing
):
    assert materialize(instance, emulated_runner(warehouse, landing), selection=[ORDERS]).success  # job on clusters
    client = WorkspaceClient(host=workspace.host, token=TOKEN)
    (job,) = client.jobs.list(name="platform_assets.definitions [test]")
    started = client.jobs.run_now(job.job_id, only=["bronze__orders"]).run_id  # runs this code's wheel

    with pytest.raises(dg.Failure, match=rf"Databricks run {started} of job {job.job_id} does not run this "
                                         r"code's package /Volumes/main/platform/artifacts/other\.whl"):
        check_package(client, SharedRun("dagster-run", started), "/Volumes/main/platform/artifacts/other.whl")

    assert workspace.runs[started].wait(timeout=60)["result_state"] == "CANCELED"


def test_a_failed_task_of_a_tables_own_run_fails_the_step_with_the_error_from_its_output(
    graph_run, workspace, instance, warehouse, landing
):
    workspace.faults.next_task_fails("bronze__orders", "MemoryError: the driver ran out of memory")

    result = materialize(instance, emulated_runner(warehouse, landing, run_per_table=True), selection=[ORDERS])

    assert not result.success
    assert "MemoryError: the driver ran out of memory" in _errors(instance, result.run_id)


def test_the_token_never_reaches_dagsters_storage(graph_run, workspace, instance):
    stored = []
    for run in instance.get_runs():
        stored.append(repr(run))  # run config, tags, everything stored with the run
        stored.extend(repr(entry) for entry in instance.all_logs(run.run_id))
    assert stored and not any(TOKEN in text for text in stored)
    assert workspace.requests_containing(TOKEN) == []


def cli_env(instance: dg.DagsterInstance, warehouse: Path, landing: str, tmp_path: Path, **settings) -> dict:
    """The environment of a CLI run on the Databricks target against the emulator, in `instance`;
    `settings` replace the emulated ones."""
    settings_file = tmp_path / "databricks.yaml"
    settings_file.write_text(yaml.safe_dump(emulated_settings(warehouse, landing) | settings))
    return {**os.environ, "DAGSTER_HOME": instance.root_directory, "PLATFORM_TARGET": "databricks",
            "PLATFORM_DATABRICKS_CONFIG": str(settings_file)}


def _materialized(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    return sorted({e.asset_materialization.asset_key.to_user_string().replace("/", ".") for e in events})


def _errors(instance: dg.DagsterInstance, run_id: str) -> str:
    texts = []
    for entry in instance.all_logs(run_id):
        error = getattr(getattr(entry.dagster_event, "event_specific_data", None), "error", None)
        if error is not None:
            texts.append(error.to_string())
    return "\n".join(texts)
