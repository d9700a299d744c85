"""The managed Databricks job's settings, from the declarations and the compute settings."""

from jobs.contract import TaskFolder
from jobs.registry import dependents, discover
from resources.databricks_job import JobSpec
from resources.databricks_runner import DatabricksCompute

TABLES = discover().tables
SHARED = DatabricksCompute(num_workers=2).task_fields()


def job_settings(compute_by_table: dict | None = None, environments=(), timeout_seconds: int = 0) -> dict:
    compute = {name: (compute_by_table or {}).get(name, SHARED) for name in TABLES}
    return JobSpec(
        name="dagster platform_assets.definitions", tables=TABLES, compute=compute,
        launcher="/Volumes/main/platform/artifacts/launch.py", libraries=[{"whl": "/Volumes/w.whl"}],
        environments=list(environments), pipes_root="/tmp/pipes", context_wait_seconds=600,
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
        "pipes_root": "/tmp/pipes", "context_wait_seconds": "600"}


def test_a_table_with_compute_of_its_own_gets_its_own_job_cluster():
    big = DatabricksCompute(autoscale_min_workers=2, autoscale_max_workers=8).task_fields()

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
