"""The figures of `make bench TARGETS=databricks-scale TABLES=N`: a graph of N generated tables
as one Dagster run on the Databricks target, against the emulator, beside the five TPC-H tables'
run the same way.

A throwaway copy of the project (under .local/bench/sf<SF>/work/) declares the N tables
(scripts/scale_tables.py, layers of 100, the daily ones over three days). Each graph is one
`dagster asset materialize` on the Databricks target, as a user runs it: the run's steps in step
processes, every ready step at once. The emulator runs each task as a Spark Connect client of
the warm local Spark server; on 2 cores it runs at most `TASKS_AT_ONCE` tasks at a time (a
smaller workspace: the others wait PENDING, holding no execution context).
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import dagster as dg
import yaml

from scripts.bench import timed
from scripts.bench_scale import commit_feed, copy_project
from scripts.emulated_workspace import emulated_settings, start_emulator
from scripts.runs import every_day, materialize_command
from scripts.scale_tables import LAYER_WIDTH, feeds, scale_tables
from scripts.setup_local import link_instance_config

TOKEN = "dapi-benchmark"
DAYS = ("2025-12-01", "2025-12-04")  # the daily tables' partitions: first day, end (exclusive)
LAST_DAY = "2025-12-03"
TASKS_AT_ONCE = 8
POLL_SECONDS = 2.0  # of each step: the task's state, and its Pipes messages
TPCH_GROUPS = ("bronze", "silver", "gold")


def bench_databricks_scale(work: Path, landing: Path, count: int) -> None:
    """Run the five TPC-H tables, then `count` generated ones, each graph as one Dagster run on
    the Databricks target against one emulator; print the figures."""
    print(f"databricks target at scale (emulator, at most {TASKS_AT_ONCE} tasks running at once, "
          f"steps poll every {POLL_SECONDS:g} s)", flush=True)
    project = copy_project(work / f"project{count}", count, DAYS)
    shutil.copytree(landing, work / "landing")
    for n, name in enumerate(feeds(count)):
        for day in range(3):
            commit_feed(work / "landing", name, n * 3 + day)
    workspace = start_emulator(work / "workspace", TOKEN, max_concurrent_task_runs=TASKS_AT_ONCE)
    try:
        five = _graph_run(workspace, project, work / "five", work / "landing", TPCH_GROUPS, every_day())
        schemas = sorted({table.schema for table in scale_tables(count)})
        daily = any(table.daily for table in scale_tables(count))
        many = _graph_run(workspace, project, work / "many", work / "landing", schemas,
                          f"{DAYS[0]}...{LAST_DAY}" if daily else None)
    finally:
        workspace.stop()
    for name, figures in (("the five TPC-H tables", five), (f"{count} generated tables", many)):
        top = ", ".join(f"{path} {n:,}" for path, n in figures["by_endpoint"].most_common(4))
        print(f"  {name}: {figures['tasks']} tasks ({figures['succeeded']} succeeded) in {figures['runs']} Databricks run(s), "
              f"{figures['cluster_starts']} cluster start(s), {figures['requests']:,} API requests "
              f"({top}), {figures['wall']:.0f} s wall, peak {figures['peak_pss'] / 2**30:.1f} GiB summed PSS "
              f"of the Dagster run's processes and the Spark server (the emulator's tasks not counted)", flush=True)
    print(f"  {count} tables against 5: {many['wall'] / five['wall']:.1f}x the wall time, "
          f"{many['requests'] / max(five['requests'], 1):.1f}x the requests, "
          f"{many['requests'] / many['tasks']:.0f} requests a task (5 tables: {five['requests'] / five['tasks']:.0f})")


def _graph_run(workspace, project: Path, work: Path, landing: Path, groups, days: str | None) -> dict:
    """One `dagster asset materialize` of the tables in `groups`, the daily ones over `days`,
    on the Databricks target."""
    home = work / "dagster_home"
    home.mkdir(parents=True)
    link_instance_config(home)
    settings = emulated_settings(work / "warehouse", str(landing)) | {"poll_interval_seconds": POLL_SECONDS}
    (work / "databricks.yaml").write_text(yaml.safe_dump(settings))
    env = {**os.environ, "DAGSTER_HOME": str(home), "PLATFORM_TARGET": "databricks",
           "PLATFORM_DATABRICKS_CONFIG": str(work / "databricks.yaml"), "PLATFORM_LANDING_DIR": str(landing),
           "DATABRICKS_HOST": workspace.host, "DATABRICKS_TOKEN": TOKEN}
    env.pop("PYTHONPATH", None)
    runs_before, requests_before = set(workspace.runs), len(workspace.requests)
    starts_before = workspace.cluster_start_count
    selection = " or ".join(f"group:{group}" for group in groups)
    command = materialize_command(selection, partitions=days)
    # A task that fails (the local Spark server overloaded) is reported, not the end of the figures.
    wall, (_, peak_pss), _ = timed(command, env=env, cwd=project, check=False)
    runs = [workspace.runs[i] for i in sorted(set(workspace.runs) - runs_before)]
    requests = workspace.requests[requests_before:]
    tasks = [task for run in runs for task in run.latest_tasks()]
    return {
        "tasks": len(tasks), "succeeded": sum(task.result_state == "SUCCESS" for task in tasks),
        "runs": len(runs), "cluster_starts": workspace.cluster_start_count - starts_before,
        "requests": len(requests), "wall": wall, "peak_pss": peak_pss,
        "by_endpoint": Counter(_endpoint(r.path) for r in requests),
    }


def _endpoint(path: str) -> str:
    """A request's endpoint: the Files API without the file's path."""
    return "/api/2.0/fs/" + path.split("/")[4] if path.startswith("/api/2.0/fs/") else path
