"""The job contract: what the orchestrator asks of one table job, and what the job reports.

Both sides import this module. A runner builds `JobParameters` and sends them as Pipes extras;
the job reads them back with `JobParameters.from_extras`. The job reports a `BuildReport` as
its materialization's metadata; readers of Dagster's event log (the demo's summary, the
benchmark) parse it back with `BuildReport.from_metadata`. Plain data: no Spark, no Dagster.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# A job that lost a write conflict to another writer exits with this code (and prints
# RETRYABLE_MARKER first, which a Databricks run's state message carries): running it again is safe.
RETRYABLE_EXIT_CODE = 75
RETRYABLE_MARKER = "RETRYABLE"
# `python -m jobs.entrypoint --wait-for-job [SPARK_URL]`: a local job process started before its
# job reads the job's Pipes bootstrap from stdin (see jobs/entrypoint.py).
WAIT_FOR_JOB_FLAG = "--wait-for-job"

_EXTRAS_KEY = "job"


@dataclass(frozen=True)
class DayRange:
    """The days `start` (inclusive) to `end` (exclusive), both YYYY-MM-DD."""

    start: str
    end: str


@dataclass(frozen=True)
class SparkTarget:
    """Where the job gets its Spark session.

    `remote` is a Spark Connect server (`sc://host:port`, the local warm server). Without it the
    job takes the session of the compute it runs on (a Databricks cluster), or starts one in its
    own process with `conf` (the one-JVM-per-job mode).
    """

    remote: str | None = None
    conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobParameters:
    """Everything a table job needs, sent by the orchestrator."""

    table: str  # schema.table, as declared
    catalog: str
    landing_dir: str
    warehouse_dir: str | None  # None: catalog tables addressed by name (Unity Catalog)
    input_versions: dict[str, int]  # input table (schema.table) -> Delta version to read
    write_id: str  # the write's identity: a retried job repeats it, Delta commits it once
    ran_on: str  # where the orchestrator sent the job, for the report
    spark: SparkTarget = SparkTarget()
    days: DayRange | None = None  # the days to build, for a partitioned table
    # Rebuild from all inputs: a table that ingests landing files ingests every file again,
    # replacing its contents (other tables are rebuilt from all their inputs anyway).
    full_refresh: bool = False
    # Times the job builds again itself after losing a write conflict, before it exits with
    # RETRYABLE_EXIT_CODE: a task of a shared Databricks run cannot be started again while
    # the run's other tasks go on, so it retries in place.
    conflict_retries: int = 0

    def to_extras(self) -> dict[str, Any]:
        return {_EXTRAS_KEY: dataclasses.asdict(self)}

    @classmethod
    def from_extras(cls, extras: Mapping[str, Any]) -> "JobParameters":
        if _EXTRAS_KEY not in extras:
            raise ValueError(f"the Pipes extras carry no job parameters ('{_EXTRAS_KEY}'): {sorted(extras)}")
        values = dict(extras[_EXTRAS_KEY])
        values["spark"] = SparkTarget(**values["spark"])
        if values.get("days") is not None:
            values["days"] = DayRange(**values["days"])
        return cls(**values)


@dataclass(frozen=True)
class TaskFolder:
    """Where the orchestrator and one task attempt of a shared Databricks job run meet: a
    folder on DBFS or a volume, named by the run and the task attempt's run id. The task waits
    for `context` (its Pipes context), or for `abort` (why it will never come), and writes its
    Pipes messages under `messages`."""

    path: str

    # Task parameters, resolved by Databricks when the task starts (dynamic value references).
    ARGUMENT = "--pipes-folder"
    WAIT_ARGUMENT = "--context-wait-seconds"

    @classmethod
    def of(cls, root: str, job_run_id: int | str, task_run_id: int | str) -> "TaskFolder":
        return cls(f"{root.rstrip('/')}/{job_run_id}/{task_run_id}")

    @property
    def context(self) -> str:
        return f"{self.path}/context.json"

    @property
    def messages(self) -> str:
        return f"{self.path}/messages"

    @property
    def abort(self) -> str:
        return f"{self.path}/abort"


@dataclass(frozen=True)
class BuildReport:
    """What one build wrote and read: the materialization's metadata."""

    delta_version: int  # also the asset's data version
    row_count: int
    operation: str
    files_written: int
    bytes_written: int
    input_versions: dict[str, int]  # full input table name -> Delta version read
    columns: list[tuple[str, str]]  # (name, Spark SQL type)
    location: str  # the table's directory, or its three-part name
    ran_on: str
    # From the job's process start (or its context's arrival, for a task that waited for its
    # step) to a Spark session that answers.
    session_seconds: float
    build_seconds: float  # reading, transforming, writing and checking
    check_seconds: float  # of which evaluating the checks
    landing_paths: dict[str, str] = field(default_factory=dict)  # landing dataset -> directory read
    rejected_rows: int | None = None  # None: the transform marks no rows
    # Set when a blocking check failed: the version the build wrote and then took back.
    undone_version: int | None = None
    # For a table that ingests landing files: per daily table reading it, the days its new rows
    # touch (None: every day); {} when it ingested nothing. None for other tables: every day.
    touched_days: dict[str, list[DayRange] | None] | None = None
    # For a table that ingests landing files: the files it ingested, and their bytes.
    ingested_files: int | None = None
    ingested_bytes: int | None = None

    def to_metadata(self) -> dict[str, Any]:
        """Pipes metadata (raw values with their Dagster metadata types)."""
        metadata: dict[str, Any] = {
            "delta_version": self.delta_version,
            "dagster/row_count": self.row_count,
            "operation": self.operation,
            "files_written": self.files_written,
            "bytes_written": self.bytes_written,
            "input_versions": {"raw_value": self.input_versions, "type": "json"},
            "dagster/column_schema": {
                "raw_value": {"columns": [{"name": n, "type": t} for n, t in self.columns]},
                "type": "table_schema",
            },
            "location": {"raw_value": self.location, "type": "path" if "/" in self.location else "text"},
            "ran_on": self.ran_on,
            "session_seconds": round(self.session_seconds, 3),
            "build_seconds": round(self.build_seconds, 3),
            "check_seconds": round(self.check_seconds, 3),
        }
        if self.landing_paths:
            metadata["landing_paths"] = {"raw_value": self.landing_paths, "type": "json"}
        if self.rejected_rows is not None:
            metadata["rejected_rows"] = self.rejected_rows
        if self.undone_version is not None:
            metadata["undone_version"] = self.undone_version
        if self.touched_days is not None:
            metadata[TOUCHED_DAYS_KEY] = {"raw_value": touched_days_json(self.touched_days), "type": "json"}
        if self.ingested_files is not None:
            metadata["ingested_files"] = self.ingested_files
            metadata["ingested_bytes"] = self.ingested_bytes
        return metadata

    @classmethod
    def from_metadata(cls, values: Mapping[str, Any]) -> "BuildReport":
        """The report from a stored materialization's metadata values (`MetadataValue.value`)."""
        schema = values["dagster/column_schema"]
        columns = [(c.name, c.type) for c in schema.columns] if hasattr(schema, "columns") else [
            (c["name"], c["type"]) for c in schema["columns"]]
        return cls(
            delta_version=int(values["delta_version"]),
            row_count=int(values["dagster/row_count"]),
            operation=values["operation"],
            files_written=int(values["files_written"]),
            bytes_written=int(values["bytes_written"]),
            input_versions=dict(values["input_versions"]),
            columns=columns,
            location=values["location"],
            ran_on=values["ran_on"],
            session_seconds=float(values["session_seconds"]),
            build_seconds=float(values["build_seconds"]),
            check_seconds=float(values["check_seconds"]),
            landing_paths=dict(values.get("landing_paths") or {}),
            rejected_rows=values.get("rejected_rows"),
            undone_version=values.get("undone_version"),
            touched_days=touched_days_from_json(values.get(TOUCHED_DAYS_KEY)),
            ingested_files=values.get("ingested_files"),
            ingested_bytes=values.get("ingested_bytes"),
        )


def day_ranges(dates: Iterable[dt.date]) -> list[DayRange]:
    """Dates as the fewest ranges of consecutive days (end exclusive), in order."""
    ranges: list[list[dt.date]] = []
    for day in sorted(dates):
        if ranges and ranges[-1][1] == day:
            ranges[-1][1] = day + dt.timedelta(days=1)
        else:
            ranges.append([day, day + dt.timedelta(days=1)])
    return [DayRange(start.isoformat(), end.isoformat()) for start, end in ranges]


# The materialization metadata key of BuildReport.touched_days, which automation reads.
TOUCHED_DAYS_KEY = "touched_days"


def touched_days_json(touched: dict[str, list[DayRange] | None]) -> dict[str, list[list[str]] | None]:
    """{table: [[start, end], ...] or None}: JSON for the metadata."""
    return {table: None if ranges is None else [[r.start, r.end] for r in ranges]
            for table, ranges in touched.items()}


def touched_days_from_json(value: Mapping[str, Any] | None) -> dict[str, list[DayRange] | None] | None:
    """BuildReport.touched_days from its metadata JSON (None when absent)."""
    if value is None:
        return None
    return {table: None if ranges is None else [DayRange(start, end) for start, end in ranges]
            for table, ranges in value.items()}
