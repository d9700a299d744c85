"""The one Databricks job the platform manages: a task per table, sharing job clusters.

Its settings come from the declarations and the runner's compute: `depends_on` from the
lineage, one job cluster per distinct cluster spec (the default compute's is shared by every
table that has no compute of its own). A task learns where its Pipes session is from its
parameters, which Databricks resolves when the task starts: `{{job.run_id}}` and
`{{task.run_id}}` name a folder per task attempt (jobs/contract.py `TaskFolder`).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass

from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import DatabricksError
from databricks.sdk.service import jobs

from jobs.contract import TaskFolder
from jobs.registry import build_order, lineage_groups
from jobs.table import Table

DEFINITIONS_MODULE = "platform_assets.definitions"
SETTINGS_TAG = "platform_settings_sha"  # the hash of the settings a reset last applied
PIPES_ROOT_PARAMETER = "pipes_root"
CONTEXT_WAIT_PARAMETER = "context_wait_seconds"
# Dagster runs at once may each hold a run of the job; the run queue limits them.
MAX_CONCURRENT_RUNS = 100
# A cluster opens at most 150 execution contexts, one per running Python task ("Too many
# execution contexts are open right now"); a job cluster serves at most this many tasks, so a
# run never runs more on one cluster, however many of its tasks are ready at once.
MAX_TASKS_PER_CLUSTER = 150


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
        clusters, cluster_of = self._job_clusters()
        tasks = []
        for name in build_order(self.tables):
            fields = dict(self.compute[name])
            if fields.pop("new_cluster", None) is not None:
                fields["job_cluster_key"] = cluster_of[name]
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
            # Said outright: API 2.2 queues by default and 2.1 skips a run over the limit.
            "queue": {"enabled": True},
            "tags": {"managed_by": "dagster", "code_location": DEFINITIONS_MODULE},
        }
        if self.environments:
            settings["environments"] = self.environments
        return settings

    def _job_clusters(self) -> tuple[dict[str, dict], dict[str, str]]:
        """The job clusters (key -> new_cluster) and each job-cluster table's key: one cluster
        per distinct spec and MAX_TASKS_PER_CLUSTER tables. Tables that read one another share
        a cluster where they fit in one, so a run of a few connected tables starts one cluster
        however many the job has."""
        clusters: dict[str, dict] = {}
        served: Counter[str] = Counter()
        cluster_of: dict[str, str] = {}

        def place(names: list[str], cluster: dict) -> None:
            """On the first cluster of the spec with room for all of `names`, else a new one."""
            key = next((k for k, c in clusters.items()
                        if c == cluster and served[k] + len(names) <= MAX_TASKS_PER_CLUSTER),
                       f"cluster_{len(clusters) + 1}")
            clusters[key] = cluster
            served[key] += len(names)
            cluster_of.update(dict.fromkeys(names, key))

        # Largest first: a group split over clusters gets clusters of its own, rather than the
        # room that smaller groups left.
        for group in sorted(lineage_groups(self.tables), key=len, reverse=True):
            by_spec: dict[str, list[str]] = {}
            for name in group:
                if "new_cluster" in self.compute[name]:
                    spec = json.dumps(self.compute[name]["new_cluster"], sort_keys=True)
                    by_spec.setdefault(spec, []).append(name)
            for names in by_spec.values():
                cluster = self.compute[names[0]]["new_cluster"]
                if len(names) <= MAX_TASKS_PER_CLUSTER:
                    place(names, cluster)
                else:  # larger than a cluster: split in build order
                    for name in names:
                        place([name], cluster)
        return clusters, cluster_of


def ensure_job(workspace: WorkspaceClient, spec: JobSpec) -> int:
    """The id of the job named `spec.name`, created or reset to `spec`'s settings if they
    differ. Safe from any number of steps on any number of machines without a lock: a create
    that races another leaves two jobs of the name, and every caller converges on the oldest
    (lowest id), deleting the others once nothing runs them."""
    settings = spec.settings()
    # The hash of the settings it is computed from, before it joins them as a tag.
    settings["tags"][SETTINGS_TAG] = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    found = _jobs_named(workspace, spec.name)
    if not found:
        workspace.jobs.create(**_create_args(settings))
        found = _jobs_named(workspace, spec.name)
    job_id, *duplicates = found
    for duplicate in duplicates:
        if not any(True for _ in workspace.jobs.list_runs(job_id=duplicate, active_only=True)):
            try:
                workspace.jobs.delete(duplicate)
            except DatabricksError:  # another caller deleted it first ("Job N does not exist")
                pass
    job = workspace.jobs.get(job_id)
    if (job.settings.tags or {}).get(SETTINGS_TAG) != settings["tags"][SETTINGS_TAG]:
        workspace.jobs.reset(job_id, jobs.JobSettings.from_dict(settings))
    return job_id


def _jobs_named(workspace: WorkspaceClient, name: str) -> list[int]:
    return sorted(job.job_id for job in workspace.jobs.list(name=name))


def _create_args(settings: dict) -> dict:
    request = jobs.JobSettings.from_dict(settings)
    return {name: getattr(request, name) for name in settings}
