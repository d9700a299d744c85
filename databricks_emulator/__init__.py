"""A local Databricks workspace emulator: the HTTP API the databricks-sdk and
dagster-databricks' Pipes clients use, served on 127.0.0.1, running submitted Python tasks as
local subprocesses. See DatabricksEmulator and docs/databricks.md."""

from .emulator import DatabricksEmulator
from .faults import Faults
from .handler import RecordedRequest
from .runs import Run, TaskRun

__all__ = ["DatabricksEmulator", "Faults", "RecordedRequest", "Run", "TaskRun"]
