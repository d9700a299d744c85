"""Runs one table's job: read the pinned inputs, transform, write one Delta commit, report it.

`build_table` is the Spark work alone; `run_table` wraps it in a Dagster Pipes session, which
gives it its parameters (extras) and carries the materialization back to the orchestrator.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass


from dagster_pipes import PipesContext
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.checks import CheckOutcome, SchemaContract, schema_differences
from jobs.pipes_io import on_databricks, open_pipes
from jobs.registry import Declarations
from jobs.table import REJECT_COLUMN, Append, FailOnBadRows, LandingFiles, Table
from jobs.warehouse import Commit, Days, Warehouse, WriteTxn


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
    # (`commit` is then the RESTORE to the version before it).
    undone_version: int | None = None


class BuildFailed(Exception):
    """The build stopped on purpose (bad rows, a blocking check); the message says why."""


class WriteConflict(Exception):
    """Another writer committed to the table first; running the job again is safe."""


def build_table(
    spark: SparkSession, warehouse: Warehouse, table: Table, pinned_versions: dict[str, int],
    write_id: str, declarations: Declarations | None = None, days: Days | None = None,
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
    """
    try:
        return _build(spark, warehouse, table, pinned_versions, write_id, declarations, days)
    except Exception as error:
        if _is_concurrent_modification(error):
            raise WriteConflict(
                f"write conflict on {warehouse.full_name(table.name)}: another writer committed "
                f"first ({type(error).__name__}); the table is unchanged by this job, which can run again"
            ) from error
        error.add_note(f"while building table {warehouse.full_name(table.name)} ({table.module})")
        raise


def _build(
    spark: SparkSession, warehouse: Warehouse, table: Table, pinned_versions: dict[str, int],
    write_id: str, declarations: Declarations | None, days: Days | None,
) -> TableBuild:
    name = warehouse.full_name(table.name)
    contracts = declarations.contracts() if declarations else {}
    frames, versions, landing = {}, {}, {}
    for param, source in table.inputs.items():
        if isinstance(source, LandingFiles):
            frames[param] = warehouse.read_landing(spark, source.dataset)
            landing[source.dataset] = warehouse.landing_path(source.dataset)
            continue
        version = pinned_versions.get(source)
        if version is None:
            version = warehouse.latest_version(spark, source)
        frame = warehouse.read_table(spark, source, version)
        versions[warehouse.full_name(source)] = version
        if source in contracts:
            _check_input_schema(warehouse.full_name(source), version, frame, contracts[source], name)
        upstream = declarations.tables.get(source) if declarations else None
        if days is not None and upstream is not None and upstream.partitions is not None:
            frame = days.on(upstream.partitions.column).select(frame)
        frames[param] = frame
    result, rejected = _split_rejected(table.transform(**frames))
    if days is not None:
        result = days.select(result)
    txn = WriteTxn(f"{name} {write_id}")
    rejected_rows = _handle_rejected(spark, warehouse, table, rejected, write_id, txn)
    before = warehouse.current_version(spark, table.name)
    commit = warehouse.write(spark, table.name, result, table.write, txn,
                             merge_schema=table.schema_evolution, days=days)
    written = warehouse.read_table(spark, table.name, commit.version)
    if days is not None:
        written = days.select(written)
    checking = time.monotonic()
    outcomes = [check.evaluate(written) for check in table.checks]
    check_seconds = time.monotonic() - checking
    undone = None
    failed = [o for o in outcomes if o.blocking and not o.passed]
    if failed:
        if before is None:
            warehouse.drop(spark, table.name)
            raise BuildFailed(f"{name}: blocking check(s) failed on its first version, which was removed: "
                              + "; ".join(o.summary() for o in failed))
        undone = commit.version
        commit = warehouse.undo(spark, table.name, before, days)
        written = warehouse.read_table(spark, table.name, commit.version)
        if days is not None:
            written = days.select(written)
    return TableBuild(
        commit=commit,
        row_count=written.count(),
        input_versions=versions,
        landing_paths=landing,
        columns=[(f.name, f.dataType.simpleString()) for f in written.schema.fields],
        checks=outcomes,
        check_seconds=check_seconds,
        rejected_rows=rejected_rows,
        undone_version=undone,
    )


def _handle_rejected(
    spark: SparkSession, warehouse: Warehouse, table: Table, rejected: DataFrame | None,
    write_id: str, txn: WriteTxn,
) -> int | None:
    """Fail on bad rows or append them to the quarantine table; return their count."""
    if rejected is None:
        return None
    rejected = rejected.cache()
    count = rejected.count()
    name = warehouse.full_name(table.name)
    if count and isinstance(table.bad_rows, FailOnBadRows):
        samples = [row[REJECT_COLUMN] for row in rejected.limit(3).collect()]
        raise BuildFailed(f"{name}: {count} bad rows, e.g. {samples}; nothing was written")
    if count:
        target = table.bad_rows.table
        quarantined = rejected.withColumn("_rejected_by", F.lit(txn.tag))
        warehouse.write(spark, target, quarantined, Append(),
                        WriteTxn(f"{warehouse.full_name(target)} {write_id}"), merge_schema=True)
    return count


def _split_rejected(result: DataFrame) -> tuple[DataFrame, DataFrame | None]:
    """Rows the transform marked with a reject reason apart from the others, if it marks any."""
    if REJECT_COLUMN not in result.columns:
        return result, None
    reason = F.col(REJECT_COLUMN)
    return result.where(reason.isNull()).drop(REJECT_COLUMN), result.where(reason.isNotNull())


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


def _is_concurrent_modification(error: BaseException) -> bool:
    """Delta's conflicts (ConcurrentAppendException and the like), however Spark wraps them."""
    text = f"{type(error).__name__} {error}"
    return any(marker in text for marker in (
        "ConcurrentAppendException", "ConcurrentDeleteReadException", "ConcurrentDeleteDeleteException",
        "ConcurrentTransactionException", "MetadataChangedException", "ProtocolChangedException",
        "ConcurrentWriteException", "DELTA_CONCURRENT",
    ))


# The job's exit code when it lost a write conflict: the orchestrator runs it again.
RETRYABLE_EXIT_CODE = 75


def run_table(table: Table, declarations: Declarations) -> None:
    """Build `table` inside the Dagster Pipes session the orchestrator opened for this process."""
    with open_pipes() as pipes:
        extras = pipes.extras
        started = time.monotonic()
        spark = SparkSession.builder.config(map=extras.get("spark_conf", {})).getOrCreate()
        if not on_databricks():  # no SparkContext on serverless or shared (Spark Connect) compute
            spark.sparkContext.setLogLevel("WARN")
        session_ready = time.monotonic()
        warehouse = Warehouse(
            catalog=extras["catalog"],
            landing_root=extras["landing_dir"],
            root=extras.get("warehouse_dir"),
            external=frozenset(declarations.external),
        )
        # Printed, not logged through Pipes: the job's stdout reaches the step's logs locally
        # and, through include_stdio_in_messages, from Databricks. (dagster-pipes can drop what
        # is printed in the last second before the session closes.)
        pinned = extras.get("input_versions", {})
        print(f"{warehouse.full_name(table.name)}: building, inputs pinned at {pinned}", flush=True)
        try:
            days = extras.get("days")
            if days is not None:
                days = Days(table.partitions.column, days["start"], days["end"])
            build = build_table(spark, warehouse, table, pinned, extras["write_id"], declarations, days)
        except WriteConflict as conflict:
            print(f"RETRYABLE {conflict}", file=sys.stderr, flush=True)
            sys.exit(RETRYABLE_EXIT_CODE)
        if build.undone_version is not None:
            print(f"{warehouse.full_name(table.name)}: blocking check failed on version "
                  f"{build.undone_version}; restored the previous contents as version "
                  f"{build.commit.version}", flush=True)
        else:
            print(f"{warehouse.full_name(table.name)}: wrote Delta version {build.commit.version}, "
                  f"{build.row_count} rows", flush=True)
        _report(pipes, warehouse, table, build,
                startup=session_ready - started, work=time.monotonic() - session_ready)
        _report_checks(pipes, build.checks)


def _report(
    pipes: PipesContext, warehouse: Warehouse, table: Table, build: TableBuild,
    startup: float, work: float,
) -> None:
    metadata = {
        "delta_version": build.commit.version,
        "dagster/row_count": build.row_count,
        "operation": build.commit.operation,
        "files_written": build.commit.files_written,
        "bytes_written": build.commit.bytes_written,
        "input_versions": {"raw_value": build.input_versions, "type": "json"},
        "dagster/column_schema": {
            "raw_value": {"columns": [{"name": n, "type": t} for n, t in build.columns]},
            "type": "table_schema",
        },
        "location": {
            "raw_value": warehouse.location(table.name),
            "type": "text" if warehouse.root is None else "path",
        },
        "spark_startup_seconds": round(startup, 3),
        "spark_seconds": round(work, 3),
        "check_seconds": round(build.check_seconds, 3),
        "ran_on": f"{pipes.extras['ran_on']} {os.getpid()} on {socket.gethostname()}",
    }
    if build.landing_paths:
        metadata["landing_paths"] = {"raw_value": build.landing_paths, "type": "json"}
    if build.rejected_rows is not None:
        metadata["rejected_rows"] = build.rejected_rows
    if build.undone_version is not None:
        metadata["undone_version"] = build.undone_version
    pipes.report_asset_materialization(
        metadata=metadata, data_version=str(build.commit.version)
    )


def _report_checks(pipes: PipesContext, outcomes: list[CheckOutcome]) -> None:
    for outcome in outcomes:
        metadata = {"failing_count": outcome.failing_count}
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
