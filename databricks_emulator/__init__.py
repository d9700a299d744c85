"""A local Databricks workspace emulator: the HTTP API the databricks-sdk and
dagster-databricks' Pipes clients use, served on 127.0.0.1, running submitted Python tasks as
local subprocesses. See DatabricksEmulator and docs/databricks.md.

A run's tasks start in parallel as their depends_on end, each gated by its run_if. Dynamic
value references ({{job.run_id}}, {{task.run_id}}, ...) are resolved in task parameters when a
task starts. `DatabricksEmulator.cluster_starts` records every cluster a workload started;
`Faults` injects HTTP errors and failing or hanging runs and tasks.
"""

from .compute import ClusterStart
from .emulator import DatabricksEmulator
from .faults import Faults
from .handler import RecordedRequest
from .runs import Execution, Run, TaskRun

__all__ = ["ClusterStart", "DatabricksEmulator", "Execution", "Faults", "RecordedRequest", "Run",
           "TaskRun"]
