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

Strict where a real workspace is:
- a task whose code fails has state_message "Workload failed, see run output for details";
  its error (last exception line of stderr) and stderr are in runs/get-output;
- runs/get lists a repaired run's task attempts newest execution first, all attempt_number 0
  (repair_history's task_run_ids tell them apart);
- jobs created or reset through 2.2 queue unless `queue` says otherwise (2.1: they skip);
- at most 1,000 tasks a job or run (100 through 2.1), 150 running tasks a cluster
  (`max_execution_contexts`), 1,000 running task runs a workspace (`max_concurrent_task_runs`,
  the rest wait);
- no network egress (`pypi_reachable=False`): pypi, maven, cran and requirements libraries,
  serverless dependencies that are not files, and wheels requiring a distribution outside
  `libraries.RUNTIME_PACKAGES` fail the task at setup;
- `dbfs_root_enabled=False`: the DBFS API answers 403 PERMISSION_DENIED and tasks cannot use
  files on DBFS (/Volumes still work).
"""

from .compute import ClusterStart
from .emulator import DatabricksEmulator
from .faults import Faults
from .handler import RecordedRequest
from .runs import Execution, Run, TaskRun

__all__ = ["ClusterStart", "DatabricksEmulator", "Execution", "Faults", "RecordedRequest", "Run",
           "TaskRun"]
