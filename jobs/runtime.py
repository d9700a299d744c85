"""Runs one table's job: read the pinned inputs, transform, write one Delta commit, check it.

`build_table` is the Spark work alone. It reads each input once, writes in one pass over the
transform, and checks what it wrote in one aggregation; only failures cost more passes (to
count and sample bad rows, or to undo a write). `run_table` runs it inside the Dagster Pipes
session that gives the job its parameters and carries its report back.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import delta.connect.exceptions  # noqa: F401 - gives Spark Connect errors Delta's exception types
from dagster_pipes import PipesContext
from delta.exceptions import (
    ConcurrentAppendException, ConcurrentDeleteDeleteException, ConcurrentDeleteReadException,
    ConcurrentTransactionException, ConcurrentWriteException, DeltaConcurrentModificationException,
    MetadataChangedException, ProtocolChangedException,
)
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.checks import CheckOutcome, SchemaContract, check_metrics, dates_metric, evaluate_checks, schema_differences
from jobs.contract import (
    RETRYABLE_EXIT_CODE, RETRYABLE_MARKER, BuildReport, DayRange, JobParameters, SparkTarget, day_ranges,
)
from jobs import pipes_io
from jobs.registry import Declarations
from jobs.ingestion_record import ingested_files, record_name, save_record
from jobs.landing_files import LandingFile, list_landing, new_files, read_with_source
from jobs.upkeep import upkeep_when_due
from jobs.table import (
    REJECT_COLUMN, Append, FailOnBadRows, IngestNewFiles, LandingFiles, Overwrite, Quarantine, Table,
)
from jobs.warehouse import Commit, CommitNotFound, Days, Warehouse, WriteTxn

# Delta's write conflicts: another writer committed first, and running the job again is safe.
WRITE_CONFLICTS = (
    DeltaConcurrentModificationException, ConcurrentWriteException, MetadataChangedException,
    ProtocolChangedException, ConcurrentAppendException, ConcurrentDeleteReadException,
    ConcurrentDeleteDeleteException, ConcurrentTransactionException,
)
# The error a write raises on its first bad row (see _refuse_bad_rows).
_BAD_ROW = "a row the transform marked as bad"


@dataclass(frozen=True)
class TableBuild:
    """What one build read and wrote."""

    commit: Commit
    row_count: int
    input_versions: dict[str, int]  # full table name -> Delta version read
    landing_paths: dict[str, str]  # dataset -> directory read
    columns: list[tuple[str, str]]  # (name, Spark SQL type)
    checks: list[CheckOutcome]
    check_seconds: float  # evaluating the checks
    rejected_rows: int | None  # None: the transform marks no rows
    # Set when a blocking check failed: the version written, which the table no longer shows
    # (`commit` is then the one that gave the table its previous contents back).
    undone_version: int | None = None
    # For an IngestNewFiles table: the days of each daily table reading it that the new rows
    # touch (None: every day); {} when nothing was ingested. None for other tables.
    touched_days: dict[str, list[DayRange] | None] | None = None
    ingested: list[LandingFile] | None = None  # the landing files ingested (IngestNewFiles)


class BuildFailed(Exception):
    """The build stopped on purpose (bad rows, a blocking check); the message says why."""


class WriteConflict(Exception):
    """Another writer committed to the table first; running the job again is safe."""


def build_table(
    spark: SparkSession, warehouse: Warehouse, table: Table, pinned_versions: dict[str, int],
    write_id: str, declarations: Declarations | None = None, days: Days | None = None,
    full_refresh: bool = False,
) -> TableBuild:
    """Read each input (tables at their pinned Delta version), transform, write one commit,
    check it.

    An input table without a pinned version is read at its latest version, and the version
    read is reported either way; an input that no longer matches its declared contract (in
    `declarations`) fails the build. For a partitioned table, `days` is the range to build:
    inputs partitioned by day are read for those days only, and only those days of the table
    are replaced. `write_id` identifies this write: a build repeating it (a retried job) does
    not commit again. Rows the transform marks as bad fail the build or are quarantined. A
    failed blocking check gives the table back its previous contents, as a new version that
    the build reports with every outcome (Dagster then fails the step). Errors name the table.
    A table that ingests landing files appends the new ones, or with `full_refresh` replaces its
    contents with every file's rows.
    """
    try:
        return _build(spark, warehouse, table, pinned_versions, write_id, declarations, days, full_refresh)
    except WRITE_CONFLICTS as error:
        raise WriteConflict(
            f"write conflict on {warehouse.full_name(table.name)}: another writer committed "
            f"first ({type(error).__name__}); the table is unchanged by this job, which can run again"
        ) from error
    except Exception as error:
        error.add_note(f"while building table {warehouse.full_name(table.name)} ({table.module})")
        raise


def _build(
    spark: SparkSession, warehouse: Warehouse, table: Table, pinned_versions: dict[str, int],
    write_id: str, declarations: Declarations | None, days: Days | None, full_refresh: bool,
) -> TableBuild:
    name = warehouse.full_name(table.name)
    txn = WriteTxn(f"{name} {write_id}")
    new_landing, ingested, mode = None, set(), table.write
    if isinstance(table.write, IngestNewFiles) and full_refresh:
        new_landing = {d: list_landing(warehouse.landing_root, d) for d in sorted(table.landing_datasets)}
        mode = Overwrite()
    elif isinstance(table.write, IngestNewFiles):
        read_version = warehouse.current_version(spark, table.name)
        ingested = ingested_files(spark, warehouse, table.name, read_version)
        new_landing = _new_landing_files(warehouse, table, ingested)
        if not any(new_landing.values()):
            return _unchanged(spark, warehouse, table, read_version)
        # One ingestion at a time: a concurrent one that read the same version carries the
        # same transaction, so Delta skips or refuses the second (never a file twice).
        txn = WriteTxn(f"{name} landing files", version=read_version + 1 if read_version is not None else 0,
                       label=txn.tag)
    frames, versions, landing = _read_inputs(spark, warehouse, table, pinned_versions, declarations, days,
                                             new_landing)
    result = table.transform(**frames)
    rejected_rows = None
    if REJECT_COLUMN in result.columns:
        rejected = result.where(F.col(REJECT_COLUMN).isNotNull())
        if isinstance(table.bad_rows, FailOnBadRows):
            result = _refuse_bad_rows(result)
        else:
            rejected_rows = _quarantine(spark, warehouse, table, rejected, write_id, txn)
            result = result.where(F.col(REJECT_COLUMN).isNull())
        result = result.drop(REJECT_COLUMN)
    if days is not None:
        result = days.select(result)
    # What the checks and the days touched count of the rows, taken as they are written.
    appending = new_landing is not None and not full_refresh
    metrics = check_metrics(table.checks, _touched_columns(table, declarations) if appending else None)
    try:
        commit = warehouse.write(spark, table.name, result, mode, txn, merge_schema=table.schema_evolution,
                                 days=days, change_feed=isinstance(table.write, IngestNewFiles),
                                 sort_by_day=table.clustered_by_day, observe=metrics)
    except PySparkException as error:
        if _BAD_ROW not in str(error):
            raise
        raise _bad_rows_failure(name, rejected) from None
    except CommitNotFound:
        if new_landing is None:
            raise
        # Delta skipped the append: another job's ingestion had committed the same transaction.
        raise WriteConflict(f"{name}: another job ingested from the same version first; "
                            "the job can run again and finds what is still new") from None

    written = _written(spark, warehouse, table.name, commit.version, days)
    # An ingestion appended to rows that passed the checks already: only its rows are checked.
    appended = None
    if new_landing is not None and not full_refresh and commit.read_version is not None:
        appended = warehouse.change_feed(spark, table.name, commit.version)
    ingested_now = None if new_landing is None else ingested | {f for files in new_landing.values() for f in files}
    # The record and the touched days do not wait for the checks: they run beside them, as a
    # build's Spark actions are mostly waits on small jobs. A record saved for a write that a
    # failed check then undoes is harmless: the next ingestion catches up through the undo,
    # which is not an append, by scanning the rows.
    with ThreadPoolExecutor(max_workers=1) as beside:
        touching = None
        if ingested_now is not None:
            touching = beside.submit(_record_and_touched, spark, warehouse, table, declarations, commit.version,
                                     ingested_now, appended, commit.observed, full_refresh)
        checking = time.monotonic()
        if appended is None:
            row_count, outcomes = evaluate_checks(written, table.checks, observed=commit.observed)
        else:
            row_count, outcomes = evaluate_checks(appended, table.checks, written, observed=commit.observed)
        check_seconds = time.monotonic() - checking
        touched = touching.result() if touching is not None else None
    undone = None
    failed = [o for o in outcomes if o.blocking and not o.passed]
    if failed:
        if commit.read_version is None:
            warehouse.drop(spark, table.name)
            if ingested_now is not None:
                warehouse.drop(spark, record_name(table.name))
            raise BuildFailed(f"{name}: blocking check(s) failed on its first version, which was removed: "
                              + "; ".join(o.summary() for o in failed))
        undone = commit.version
        commit = warehouse.undo(spark, table.name, commit.read_version, days, tag=f"{txn.tag} undo")
        written = _written(spark, warehouse, table.name, commit.version, days)
        row_count = written.count()
        touched = None
    if undone is None:
        upkeep_when_due(spark, warehouse, table.name, commit.version, compact=table.clustered_by_day is not None)
    return TableBuild(
        commit=commit,
        row_count=row_count,
        input_versions=versions,
        landing_paths=landing,
        columns=[(f.name, f.dataType.simpleString()) for f in written.schema.fields],
        checks=outcomes,
        check_seconds=check_seconds,
        rejected_rows=rejected_rows,
        undone_version=undone,
        touched_days=touched,
        ingested=None if new_landing is None else [f for files in new_landing.values() for f in files],
    )


def _record_and_touched(spark: SparkSession, warehouse: Warehouse, table: Table, declarations: Declarations | None,
                        version: int, files: set[LandingFile], appended: DataFrame | None,
                        observed: Mapping[str, Any] | None, full_refresh: bool) -> dict[str, list[DayRange] | None] | None:
    """Save the record that `table` holds `files` at `version`; return the days that the rows
    `appended` touch (every day without them, as for a first version; None after a full refresh),
    from the dates `observed` as they were written where it holds them."""
    save_record(spark, warehouse, table.name, version, files)
    return None if full_refresh else _days_touched(spark, warehouse, table, declarations, appended, observed)


def _new_landing_files(warehouse: Warehouse, table: Table, ingested: set[LandingFile]) -> dict[str, list[LandingFile]]:
    """Per landing dataset, the files that are not among those the table `ingested`."""
    return {dataset: new_files(list_landing(warehouse.landing_root, dataset), ingested,
                               warehouse.full_name(table.name))
            for dataset in sorted(table.landing_datasets)}


def _unchanged(spark: SparkSession, warehouse: Warehouse, table: Table, version: int) -> TableBuild:
    """The build of an ingesting table that found no new landing files: no commit, no day
    touched; the table's latest version, checked as an append of no rows (its rows passed when
    they were written), so that nothing reads the whole history."""
    written = warehouse.read_table(spark, table.name, version)
    _refuse_an_earlier_layout(warehouse.full_name(table.name), version, written, table)
    checking = time.monotonic()
    row_count, outcomes = evaluate_checks(written.limit(0), table.checks, written)
    return TableBuild(
        commit=warehouse.commit_at(spark, table.name, version),
        row_count=row_count,
        input_versions={},
        landing_paths={d: warehouse.landing_path(d) for d in sorted(table.landing_datasets)},
        columns=[(f.name, f.dataType.simpleString()) for f in written.schema.fields],
        checks=outcomes,
        check_seconds=time.monotonic() - checking,
        rejected_rows=0 if isinstance(table.bad_rows, Quarantine) else None,
        touched_days={},
        ingested=[],
    )


def _refuse_an_earlier_layout(name: str, version: int, written: DataFrame, table: Table) -> None:
    """Fail, naming the columns and the fix, when the table lacks columns its declaration has
    (built by an earlier version of the platform): its checks would fail on Spark's error."""
    contract = next((c for c in table.checks if isinstance(c, SchemaContract)), None)
    missing = [c for c in contract.columns if c not in written.columns] if contract else []
    if missing:
        raise BuildFailed(f"{name} at version {version} lacks column(s) {missing} that its declaration has: it "
                          "was built by an earlier version of the table; rebuild it once with "
                          "`python -m scripts.update --full-refresh`")


def _touched_columns(table: Table, declarations: Declarations | None) -> tuple[str, ...]:
    """The date columns of `table` that name the days its rows touch in the daily tables reading it."""
    return tuple(sorted({
        touched_by for reader in (declarations.tables.values() if declarations else [])
        for param, source in reader.table_inputs.items()
        if source == table.name and isinstance(touched_by := reader.days_touched.get(param), str)
    }))


def _days_touched(spark: SparkSession, warehouse: Warehouse, table: Table, declarations: Declarations | None,
                  new_rows: DataFrame | None, observed: Mapping[str, Any] | None = None) -> dict[str, list[DayRange] | None]:
    """For each daily table that reads `table`, the days `new_rows` touch (its days_touched
    for that input), or None for every day (also for every reader when `new_rows` is None).
    A date column's values are taken from `observed` (check_metrics) where it has them."""
    touched: dict[str, list[DayRange] | None] = {}
    for reader in (declarations.tables.values() if declarations else []):
        params = [p for p, source in reader.table_inputs.items() if source == table.name]
        if reader.partitions is None or not params:
            continue
        if new_rows is None or any(p not in reader.days_touched for p in params):
            touched[reader.name] = None
            continue
        others = {}
        if any(callable(reader.days_touched[p]) for p in params):
            others = {p: warehouse.read_latest(spark, source)
                      for p, source in reader.table_inputs.items() if p not in params}
        if any(other is None for other in others.values()):
            touched[reader.name] = None  # an input not built yet: its first build reads every day
            continue
        dates = set()
        for param in params:
            touched_by = reader.days_touched[param]
            if isinstance(touched_by, str) and observed is not None and dates_metric(touched_by) in observed:
                dates |= {day for day in observed[dates_metric(touched_by)] if day is not None}
                continue
            days = new_rows.select(touched_by) if isinstance(touched_by, str) else touched_by(new_rows, others)
            dates |= {row[0] for row in days.distinct().collect() if row[0] is not None}
        touched[reader.name] = day_ranges(dates)
    return touched


def _read_inputs(
    spark: SparkSession, warehouse: Warehouse, table: Table, pinned_versions: dict[str, int],
    declarations: Declarations | None, days: Days | None,
    new_landing: dict[str, list[LandingFile]] | None = None,
) -> tuple[dict[str, DataFrame], dict[str, int], dict[str, str]]:
    """Each input as a DataFrame by parameter, the Delta version read of each input table, and
    the directory of each landing dataset read (only `new_landing`'s files when given)."""
    contracts = declarations.contracts() if declarations else {}
    frames, versions, landing = {}, {}, {}
    for param, source in table.inputs.items():
        if isinstance(source, LandingFiles):
            frames[param] = (read_with_source(spark, warehouse.landing_root, new_landing[source.dataset]) if new_landing is not None
                             else warehouse.read_landing(spark, source.dataset))
            landing[source.dataset] = warehouse.landing_path(source.dataset)
            continue
        version = pinned_versions.get(source)
        if version is None:
            version = warehouse.latest_version(spark, source)
        frame = warehouse.read_pinned(spark, source, version)
        versions[warehouse.full_name(source)] = version
        if source in contracts:
            _check_input_schema(warehouse.full_name(source), version, frame, contracts[source],
                                warehouse.full_name(table.name))
        upstream = declarations.tables.get(source) if declarations else None
        frames[param] = frame if days is None else rows_of_days(frame, days, table, param, upstream)
    return frames, versions, landing


def rows_of_days(frame: DataFrame, days: Days, table: Table, param: str, upstream: Table | None) -> DataFrame:
    """The rows of input `param` (`frame`, read from table `upstream` if declared here) that a
    build of `days` of `table` reads: the input's rows of those days by the date column that
    `days_touched` names (data skipping makes this a day's read when the input is clustered by
    it), plus its rows whose day is not known yet; those days of a daily input; else all."""
    day_column = table.days_touched.get(param)
    if isinstance(day_column, str):
        return days.on(day_column).select_with_undated(frame)
    if upstream is not None and upstream.partitions is not None:
        return days.on(upstream.partitions.column).select(frame)
    return frame


def _written(spark: SparkSession, warehouse: Warehouse, name: str, version: int, days: Days | None) -> DataFrame:
    """What the build wrote: the table at `version`, or the build's days of it."""
    written = warehouse.read_table(spark, name, version)
    return days.select(written) if days is not None else written


def _refuse_bad_rows(result: DataFrame) -> DataFrame:
    """`result`, failing the query that reads it at its first bad row: the write fails before
    it commits, and no pass over the data is spent counting bad rows when there are none."""
    return result.where(
        F.when(F.col(REJECT_COLUMN).isNotNull(), F.raise_error(F.lit(_BAD_ROW))).otherwise(F.lit(True))
    )


def _bad_rows_failure(name: str, rejected: DataFrame) -> BuildFailed:
    count = rejected.count()
    samples = [row[REJECT_COLUMN] for row in rejected.limit(3).collect()]
    return BuildFailed(f"{name}: {count} bad rows, e.g. {samples}; nothing was written")


def _quarantine(
    spark: SparkSession, warehouse: Warehouse, table: Table, rejected: DataFrame, write_id: str,
    txn: WriteTxn,
) -> int:
    """Append the bad rows to the table's quarantine table, with the write that set them aside;
    return their count."""
    count = rejected.count()
    if count:
        target = table.bad_rows.table
        quarantined = rejected.withColumn("_rejected_by", F.lit(txn.tag))
        warehouse.write(spark, target, quarantined, Append(),
                        WriteTxn(f"{warehouse.full_name(target)} {write_id}"), merge_schema=True)
    return count


def _check_input_schema(
    input_name: str, version: int, df: DataFrame, contract: SchemaContract, reader: str
) -> None:
    problems = schema_differences(dict(df.dtypes), dict(contract.columns))
    missing_or_changed = [p for p in problems if "not in the contract" not in p]
    if missing_or_changed:
        raise BuildFailed(
            f"{reader} cannot read input {input_name} at version {version}: "
            + "; ".join(missing_or_changed)
        )


def spark_session(target: SparkTarget) -> SparkSession:
    """The job's Spark session: its own session on a Spark Connect server, the session of the
    compute it runs on (Databricks), or a local one started with `target.conf`."""
    if target.remote:
        return SparkSession.builder.remote(target.remote).getOrCreate()
    if target.conf:
        # A Spark of the job's own: markers of a Connect session that the parent process had
        # (inherited through the environment) would make PySpark refuse to start a local one.
        for marker in ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE"):
            os.environ.pop(marker, None)
    return SparkSession.builder.config(map=target.conf).getOrCreate()


def stop_on_termination() -> None:
    """Make SIGINT (Dagster terminating a run) and SIGTERM (Databricks and the emulator
    cancelling a task) raise KeyboardInterrupt, on which the Spark Connect client interrupts its
    operations on the server: a write stopped mid-flight does not commit afterwards."""
    # Python installs its SIGINT handler only when SIGINT was not ignored at its start, and a
    # process tree started in the background of a script (`cmd &`, nohup, many CI runners)
    # ignores it: the job would carry on and its write commit after the run was terminated.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.default_int_handler)


def run_table(declarations: Declarations, started: float) -> None:
    """Build the table that the orchestrator's Pipes session asks for, and report it; `started`
    is when the job's process started (time.monotonic())."""
    stop_on_termination()
    with pipes_io.open_pipes() as pipes:
        job = JobParameters.from_extras(pipes.extras)
        table = declarations.tables[job.table]
        spark = spark_session(job.spark)
        spark_version = spark.version  # a round trip: the session answers
        session_ready = time.monotonic()
        warehouse = Warehouse(catalog=job.catalog, landing_root=job.landing_dir, root=job.warehouse_dir,
                              external=frozenset(declarations.external))
        name = warehouse.full_name(table.name)
        days = Days.of(table.partitions.column, job.days) if job.days is not None else None
        # Printed, not logged through Pipes: the job's stdout reaches the step's logs locally
        # and, through include_stdio_in_messages, from Databricks. (dagster-pipes can drop what
        # is printed in the last second before the session closes.)
        print(f"{name}: building on Spark {spark_version}, inputs pinned at {job.input_versions}", flush=True)
        for attempt in range(job.conflict_retries + 1):
            try:
                build = build_table(spark, warehouse, table, job.input_versions, job.write_id, declarations, days,
                                    job.full_refresh)
                break
            except WriteConflict as conflict:
                if attempt == job.conflict_retries:
                    print(f"{RETRYABLE_MARKER} {conflict}", file=sys.stderr, flush=True)
                    sys.exit(RETRYABLE_EXIT_CODE)
                print(f"{conflict}: building again ({attempt + 1} of {job.conflict_retries})", flush=True)
        if build.undone_version is not None:
            print(f"{name}: blocking check failed on version {build.undone_version}; restored the "
                  f"previous contents as version {build.commit.version}", flush=True)
        else:
            print(f"{name}: wrote Delta version {build.commit.version}, {build.row_count} rows", flush=True)
        report = BuildReport(
            delta_version=build.commit.version,
            row_count=build.row_count,
            operation=build.commit.operation,
            files_written=build.commit.files_written,
            bytes_written=build.commit.bytes_written,
            input_versions=build.input_versions,
            columns=build.columns,
            location=warehouse.location(table.name),
            ran_on=f"{job.ran_on} {os.getpid()} on {socket.gethostname()}",
            # A task of a shared run may wait for its step before it can start.
            session_seconds=session_ready - (pipes_io.context_arrived or started),
            build_seconds=time.monotonic() - session_ready,
            check_seconds=build.check_seconds,
            landing_paths=build.landing_paths,
            rejected_rows=build.rejected_rows,
            undone_version=build.undone_version,
            touched_days=build.touched_days,
            ingested_files=None if build.ingested is None else len(build.ingested),
            ingested_bytes=None if build.ingested is None else sum(f.size for f in build.ingested),
        )
        pipes.report_asset_materialization(metadata=report.to_metadata(), data_version=str(report.delta_version))
        _report_checks(pipes, build.checks)
        if job.spark.remote:
            # Frees the session's state on the shared server now, not at its idle timeout: a
            # server holding every finished job's session slows down as its heap fills.
            spark.stop()


def _report_checks(pipes: PipesContext, outcomes: list[CheckOutcome]) -> None:
    for outcome in outcomes:
        metadata = {"failing_count": outcome.failing_count, "checked": outcome.checked}
        if outcome.detail:
            metadata["detail"] = outcome.detail
        if outcome.samples:
            samples = [{k: v if isinstance(v, int | float | str | bool) or v is None else str(v)
                        for k, v in row.items()} for row in outcome.samples]
            metadata["failing_samples"] = {"raw_value": samples, "type": "json"}
        pipes.report_asset_check(
            check_name=outcome.name, passed=outcome.passed,
            severity="ERROR" if outcome.blocking else "WARN", metadata=metadata,
        )
