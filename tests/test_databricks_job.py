"""The managed Databricks job's settings, from the declarations and the compute settings."""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.service import jobs

from databricks_emulator import DatabricksEmulator
from jobs.contract import TaskFolder
from jobs.registry import build_order, dependents, discover, lineage_groups
from resources.databricks_job import JobSpec, ensure_job, task_key
from resources.databricks_runner import DatabricksCompute
from scripts.scale_tables import declare_tables

TABLES = discover().tables
SHARED = DatabricksCompute(node_type_id="i3.xlarge", num_workers=2).task_fields()
PIPES_ROOT = "/Volumes/main/platform/pipes/shared_runs"


def job_settings(compute_by_table: dict | None = None, environments=(), timeout_seconds: int = 0) -> dict:
    compute = {name: (compute_by_table or {}).get(name, SHARED) for name in TABLES}
    return JobSpec(
        name="dagster platform_assets.definitions", tables=TABLES, compute=compute,
        launcher="/Volumes/main/platform/artifacts/launch.py", libraries=[{"whl": "/Volumes/w.whl"}],
        environments=list(environments), pipes_root=PIPES_ROOT, context_wait_seconds=600,
        timeout_seconds=timeout_seconds,
    ).settings()


def test_the_tables_that_read_a_table_directly_or_not_come_in_build_order():
    assert dependents(TABLES, "bronze.orders") == ["bronze.lineitem", "silver.order_lines", "gold.daily_nation_revenue"]
    assert dependents(TABLES, "bronze.customers") == ["silver.order_lines", "gold.daily_nation_revenue"]
    assert dependents(TABLES, "gold.daily_nation_revenue") == []


def test_every_table_is_a_task_on_one_shared_job_cluster_after_the_tasks_it_reads():
    settings = job_settings()

    tasks = {t["task_key"]: t for t in settings["tasks"]}
    assert settings["job_clusters"] == [{"job_cluster_key": "cluster_1", "new_cluster": SHARED["new_cluster"]}]
    assert {t["job_cluster_key"] for t in tasks.values()} == {"cluster_1"}
    assert [d["task_key"] for d in tasks["gold__daily_nation_revenue"]["depends_on"]] == ["silver__order_lines"]
    parameters = tasks["bronze__orders"]["spark_python_task"]["parameters"]
    assert parameters[:2] == [TaskFolder.ARGUMENT, "{{job.parameters.pipes_root}}/{{job.run_id}}/{{task.run_id}}"]
    assert {p["name"]: p["default"] for p in settings["parameters"]} == {
        "pipes_root": PIPES_ROOT, "context_wait_seconds": "600"}
    # Over max_concurrent_runs a run waits its turn, whichever API version made the job.
    assert settings["queue"] == {"enabled": True}


def test_a_table_with_compute_of_its_own_gets_its_own_job_cluster():
    big = DatabricksCompute(node_type_id="i3.2xlarge", autoscale_min_workers=2, autoscale_max_workers=8).task_fields()

    settings = job_settings({"silver.order_lines": big}, timeout_seconds=900)

    tasks = {t["task_key"]: t for t in settings["tasks"]}
    assert len(settings["job_clusters"]) == 2
    assert tasks["silver__order_lines"]["job_cluster_key"] != tasks["bronze__orders"]["job_cluster_key"]
    assert {t["timeout_seconds"] for t in tasks.values()} == {900}


def test_existing_cluster_and_serverless_tasks_start_no_job_cluster():
    existing = DatabricksCompute(existing_cluster_id="0101-abc").task_fields()
    serverless = DatabricksCompute(serverless=True).task_fields()
    environment = {"environment_key": "platform", "spec": {"environment_version": "2", "dependencies": ["w.whl"]}}

    settings = job_settings({name: existing for name in TABLES} | {"bronze.orders": serverless},
                            environments=[environment])

    tasks = {t["task_key"]: t for t in settings["tasks"]}
    assert settings["job_clusters"] == []
    assert tasks["bronze__orders"]["environment_key"] == "platform" and "libraries" not in tasks["bronze__orders"]
    assert tasks["silver__order_lines"]["existing_cluster_id"] == "0101-abc"
    assert settings["environments"] == [environment]


def generated(tmp_path, monkeypatch, count: int) -> dict:
    """`count` generated tables (scripts/scale_tables.py): layers of 100, each table reading
    tables of the layer before."""
    package = f"tables_{count}"  # a package name of its own: imported modules stay cached
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    declare_tables(tmp_path / package, count)
    monkeypatch.syspath_prepend(str(tmp_path))
    return discover(package).tables


def shared_compute_settings(tables: dict) -> dict:
    return JobSpec(
        name="platform_assets.definitions [test]", tables=tables, compute={name: SHARED for name in tables},
        launcher="/Volumes/main/platform/artifacts/launch.py", libraries=[{"whl": "/Volumes/w.whl"}],
        environments=[], pipes_root=PIPES_ROOT, context_wait_seconds=600,
    ).settings()


def test_a_job_cluster_serves_at_most_150_tasks_the_execution_contexts_a_cluster_opens(tmp_path, monkeypatch):
    settings = shared_compute_settings(generated(tmp_path, monkeypatch, 301))

    served = Counter(task["job_cluster_key"] for task in settings["tasks"])
    assert sorted(served.values()) == [1, 150, 150]
    assert {c["job_cluster_key"]: c["new_cluster"] for c in settings["job_clusters"]} == {
        key: SHARED["new_cluster"] for key in served}


def test_tables_that_read_one_another_share_a_job_cluster_so_their_run_starts_one(tmp_path, monkeypatch):
    layers = generated(tmp_path, monkeypatch, 300)
    assert len(lineage_groups(layers)) == 1

    settings = shared_compute_settings(TABLES | layers)

    cluster_of = {task["task_key"]: task["job_cluster_key"] for task in settings["tasks"]}
    assert len({cluster_of[task_key(name)] for name in TABLES}) == 1  # the five TPC-H tables
    assert len({cluster_of[task_key(name)] for name in layers}) == 2  # 300 connected: two, no more
    assert max(Counter(cluster_of.values()).values()) <= 150
    assert lineage_groups(TABLES) == [build_order(TABLES)]


@pytest.fixture
def workspace(tmp_path):
    with DatabricksEmulator(root=tmp_path, token="dapi-test") as emulated:
        yield WorkspaceClient(host=emulated.host, token="dapi-test")


def job_spec(**changes) -> JobSpec:
    return JobSpec(**{**dict(
        name="platform_assets.definitions [dev]", tables=TABLES, compute={name: SHARED for name in TABLES},
        launcher="/Volumes/main/platform/artifacts/launch.py", libraries=[{"whl": "/Volumes/w.whl"}],
        environments=[], pipes_root=PIPES_ROOT, context_wait_seconds=600), **changes})


def test_steps_on_several_machines_at_once_end_with_one_job_of_the_deployment(workspace):
    # Another machine's create raced this one's: two jobs of the name exist.
    other_code = jobs.JobSettings.from_dict(job_spec(context_wait_seconds=60).settings())
    racing, _ = (workspace.jobs.create(name=other_code.name, tasks=other_code.tasks,
                                       job_clusters=other_code.job_clusters).job_id for _ in range(2))

    with ThreadPoolExecutor(4) as machines:
        ids = set(machines.map(lambda _: ensure_job(workspace, job_spec()), range(8)))

    assert ids == {racing}  # the oldest wins, everywhere
    (job,) = workspace.jobs.list(name="platform_assets.definitions [dev]")
    parameters = {p.name: p.default for p in workspace.jobs.get(job.job_id).settings.parameters}
    assert parameters["context_wait_seconds"] == "600"  # and carries this code's settings


def test_a_changed_setting_resets_the_job_and_an_unchanged_one_does_not(workspace):
    job_id = ensure_job(workspace, job_spec())
    reset_before = workspace.jobs.get(job_id).settings.tags["platform_settings_sha"]

    assert ensure_job(workspace, job_spec()) == job_id
    assert workspace.jobs.get(job_id).settings.tags["platform_settings_sha"] == reset_before
    assert ensure_job(workspace, job_spec(context_wait_seconds=900)) == job_id
    assert workspace.jobs.get(job_id).settings.tags["platform_settings_sha"] != reset_before
