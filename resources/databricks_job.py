"""The one Databricks job the platform manages: a task per table, sharing job clusters.

Its settings come from the declarations and the runner's compute: `depends_on` from the
lineage, one job cluster per distinct cluster spec (the default compute's is shared by every
table that has no compute of its own). A task learns where its Pipes session is from its
parameters, which Databricks resolves when the task starts: `{{job.run_id}}` and
`{{task.run_id}}` name a folder per task attempt (jobs/contract.py `TaskFolder`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import tempfile
from contextlib import contextmanager
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from databricks.sdk import WorkspaceClient
from databricks.sdk.service import jobs

from jobs.contract import TaskFolder
from jobs.registry import build_order
from jobs.table import Table

DEFINITIONS_MODULE = "platform_assets.definitions"
SETTINGS_TAG = "platform_settings_sha"  # the hash of the settings a reset last applied
PIPES_ROOT_PARAMETER = "pipes_root"
CONTEXT_WAIT_PARAMETER = "context_wait_seconds"
# Dagster runs at once may each hold a run of the job; the pools and run queue limit them.
MAX_CONCURRENT_RUNS = 100


def task_key(table: str) -> str:
    """A table's task in the job: `schema__table` (task keys allow no dots)."""
    return table.replace(".", "__")


@dataclass(frozen=True)
class JobSpec:
    """What the job is made of: `compute` maps each table to its task's compute fields
    (`new_cluster`, `existing_cluster_id` or `environment_key`), `libraries` and
    `environments` what the tasks need to import the job package."""

    name: str
    tables: dict[str, Table]
    compute: dict[str, dict]
    launcher: str
    libraries: list[dict]
    environments: list[dict]
    pipes_root: str
    context_wait_seconds: int
    timeout_seconds: int = 0

    def settings(self) -> dict:
        """The job's settings (`jobs/create` body, `jobs/reset` new_settings)."""
        clusters: dict[str, dict] = {}  # job_cluster_key -> new_cluster, one per distinct spec
        tasks = []
        for name in build_order(self.tables):
            fields = dict(self.compute[name])
            if "new_cluster" in fields:
                cluster = fields.pop("new_cluster")
                key = next((k for k, c in clusters.items() if c == cluster), f"cluster_{len(clusters) + 1}")
                clusters[key] = cluster
                fields["job_cluster_key"] = key
            upstream = sorted(set(self.tables[name].table_inputs.values()) & set(self.tables))
            task = {
                "task_key": task_key(name),
                "depends_on": [{"task_key": task_key(u)} for u in upstream],
                "spark_python_task": {"python_file": self.launcher, "parameters": [
                    TaskFolder.ARGUMENT,
                    f"{{{{job.parameters.{PIPES_ROOT_PARAMETER}}}}}/{{{{job.run_id}}}}/{{{{task.run_id}}}}",
                    TaskFolder.WAIT_ARGUMENT, f"{{{{job.parameters.{CONTEXT_WAIT_PARAMETER}}}}}",
                ]},
                **fields,
            }
            if "environment_key" not in fields:
                task["libraries"] = self.libraries
            if self.timeout_seconds:
                task["timeout_seconds"] = self.timeout_seconds  # per table, as a run per table had
            tasks.append(task)
        settings = {
            "name": self.name,
            "tasks": tasks,
            "job_clusters": [{"job_cluster_key": k, "new_cluster": c} for k, c in clusters.items()],
            "parameters": [
                {"name": PIPES_ROOT_PARAMETER, "default": self.pipes_root},
                {"name": CONTEXT_WAIT_PARAMETER, "default": str(self.context_wait_seconds)},
            ],
            "max_concurrent_runs": MAX_CONCURRENT_RUNS,
            "tags": {"managed_by": "dagster", "code_location": DEFINITIONS_MODULE},
        }
        if self.environments:
            settings["environments"] = self.environments
        return settings


def ensure_job(workspace: WorkspaceClient, spec: JobSpec) -> int:
    """The id of the job named `spec.name`, created or reset to `spec`'s settings if they
    differ (one job per name, however many steps ask at once on this machine)."""
    settings = spec.settings()
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    settings["tags"][SETTINGS_TAG] = digest
    with machine_lock(f"job-{hashlib.sha256(spec.name.encode()).hexdigest()[:16]}"):
        found = list(workspace.jobs.list(name=spec.name))
        if not found:
            return workspace.jobs.create(**_create_args(settings)).job_id
        job = workspace.jobs.get(found[0].job_id)
        if (job.settings.tags or {}).get(SETTINGS_TAG) != digest:
            workspace.jobs.reset(job.job_id, jobs.JobSettings.from_dict(settings))
        return job.job_id


def _create_args(settings: dict) -> dict:
    request = jobs.JobSettings.from_dict(settings)
    return {name: getattr(request, name) for name in settings}


@contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """An exclusive lock shared by every process on this machine (steps run in several)."""
    path = Path(tempfile.gettempdir()) / f"platform-databricks-{name}.lock"
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

