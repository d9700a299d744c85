"""A local Databricks workspace emulator: the HTTP API the databricks-sdk and
dagster-databricks' Pipes clients use, served on 127.0.0.1, running Python tasks as local
subprocesses. See DatabricksEmulator and docs/databricks.md.

Served (Jobs under /api/2.2 and /api/2.1):
- jobs/runs/submit, runs/get, runs/get-output, runs/cancel: one-time runs;
- jobs/create, reset, get, list: job definitions (job_clusters, parameters, environments,
  max_concurrent_runs, queue);
- jobs/run-now (job_parameters, only, idempotency_token), jobs/runs/repair, runs/cancel-all;
- DBFS (/api/2.0/dbfs), the Files API for volumes, clusters/get.

A run's tasks start in parallel as their depends_on end, each gated by its run_if. Dynamic
value references ({{job.parameters.x}}, {{job.run_id}}, {{task.run_id}}, ...) are resolved
in task parameters when a task starts. `DatabricksEmulator.cluster_starts` records every
cluster a workload started; `Faults` injects HTTP errors and failing or hanging runs/tasks.
"""

from .compute import ClusterStart
from .emulator import DatabricksEmulator
from .faults import Faults
from .handler import RecordedRequest
from .runs import Execution, Run, TaskRun

__all__ = ["ClusterStart", "DatabricksEmulator", "Execution", "Faults", "RecordedRequest", "Run",
           "TaskRun"]
