"""Materialize tables through Dagster (the CLI, or the CLI's run in this process), and read
back what a run did."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from jobs.contract import BuildReport, DayRange
from jobs.registry import discover
from platform_instance.private_api import ReconstructableJob, ReconstructableRepository
from platform_assets.definitions import build_definitions, setting, step_executor
from platform_assets.table_assets import table_key
from resources.paths import PROJECT_DIR
from resources.runner import TableRunner
from resources.targets import runner_from_env

DEFINITIONS_MODULE = "platform_assets.definitions"
IMPLICIT_ASSET_JOB = "__ASSET_JOB"
# The run tags of a range of partitions that one run builds (single-run backfill policy).
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def materialize_command(selection: str, partitions: str | None = None, full_refresh: bool = False) -> list[str]:
    """`dagster asset materialize` of `selection` in this project's code location;
    `partitions` is a day or a range `first...last` of the partitioned tables selected;
    `full_refresh` sets every selected table's TableConfig.full_refresh."""
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "asset", "materialize", "-m", DEFINITIONS_MODULE, "--select", selection]
    if partitions:
        command += ["--partition-range" if "..." in partitions else "--partition", partitions]
    if full_refresh:
        command += ["--config-json", json.dumps(_full_refresh_config(selection))]
    return command


def _full_refresh_config(selection: str) -> dict:
    steps = [dg.AssetKey.from_user_string(key).to_python_identifier() for key in selection.split(",")]
    return {"ops": {step: {"config": {"full_refresh": True}} for step in steps}}


def code_location_job(name: str = IMPLICIT_ASSET_JOB) -> ReconstructableJob:
    """The code location's job `name` (default: what `dagster asset materialize` runs), as
    Dagster rebuilds it in a step's process: a run of it is one the code location can re-execute."""
    repository = ReconstructableRepository.for_module(DEFINITIONS_MODULE, "defs", str(PROJECT_DIR))
    return repository.get_reconstructable_job(name)


def execute(instance: dg.DagsterInstance, selection: str, partitions: str | None = None,
            full_refresh: bool = False) -> dg.ExecuteJobResult:
    """The run that `materialize_command(selection, partitions, full_refresh)` starts, executed
    in this process: the same job, assets, partition tags and config, without a second process
    importing Dagster and loading the definitions again."""
    runner = runner_from_env()
    if step_executor(runner) is dg.in_process_executor:
        # While Dagster plans the run, its first job gets its process and Spark session ready.
        runner.prepare()
    return dg.execute_job(
        code_location_job(), instance,
        asset_selection=[dg.AssetKey.from_user_string(key) for key in selection.split(",")],
        tags=range_tags(partitions) if partitions else {},
        run_config=_full_refresh_config(selection) if full_refresh else None,
    )


def full_history() -> list[tuple[str, str | None]]:
    """What builds every table over all its days, as (selection, partitions) for the CLI: the
    unpartitioned tables in one run, then the daily tables over every day in another.

    One `--select '*' --partition-range ...` run builds the same, but Dagster 1.13 then plans
    every table of the run for every day, the unpartitioned ones included: 12,030 planned events
    and 38,000 planned asset-check rows instead of 4,812 and 12,000, which more than doubles the
    seconds the run spends storing events.
    """
    tables = discover().tables
    unpartitioned = [name for name, table in tables.items() if table.partitions is None]
    daily = [name for name, table in tables.items() if table.partitions is not None]
    return [(_selection(unpartitioned), None), (_selection(daily), every_day())]


def _selection(names: list[str]) -> str:
    catalog = setting("PLATFORM_CATALOG", "main")
    return ",".join(table_key(catalog, name).to_user_string() for name in sorted(names))


def every_day() -> str:
    """The range of all days of the partitioned tables, `first...last`, for the CLI."""
    partitioned = [t.partitions for t in discover().tables.values() if t.partitions is not None]
    return cli_range(DayRange(min(p.start for p in partitioned), max(p.end for p in partitioned)))


def cli_range(days: DayRange) -> str:
    """`days` (end exclusive) as the CLI's `first...last` (last inclusive)."""
    last = dt.date.fromisoformat(days.end) - dt.timedelta(days=1)
    return f"{days.start}...{last.isoformat()}"


def range_tags(partitions: str) -> dict[str, str]:
    """The tags of one run over `partitions`, as for the CLI: a day, or `first...last`."""
    first, _, last = partitions.partition("...")
    return {RANGE_START: first, RANGE_END: last or first}


def materialize(
    selection: str, env: dict[str, str] | None = None, partitions: str | None = None
) -> subprocess.CompletedProcess:
    """Run `materialize_command(selection, partitions)` from the project root, output captured."""
    return subprocess.run(
        materialize_command(selection, partitions), cwd=PROJECT_DIR, env={**os.environ, **(env or {})},
        capture_output=True, text=True,
    )


def materialize_tables(
    instance: dg.DagsterInstance, runner: TableRunner, selection=None, partitions: str | None = None,
    **kwargs,
) -> dg.ExecuteInProcessResult:
    """Materialize `selection` (default: every table) in this process, jobs run by `runner`;
    `partitions` as for the CLI (a day, or `first...last`), every day if None, for the daily
    tables selected; `kwargs` go to `dg.materialize` (run_config, raise_on_error)."""
    defs = build_definitions()
    selected = selection or dg.AssetSelection.all()
    if not isinstance(selected, dg.AssetSelection):
        selected = dg.AssetSelection.assets(*selected)
    graph = defs.resolve_asset_graph()
    tags = {}
    if any(graph.get(key).partitions_def is not None for key in selected.resolve(graph)):
        tags = range_tags(partitions or every_day())
    runner.prepare()  # dg.materialize runs its steps in this process, one after another
    return dg.materialize(
        list(defs.assets), selection=selected, instance=instance,
        resources={**defs.resources, "runner": runner}, tags=tags, **kwargs,
    )


def latest_run(instance: dg.DagsterInstance) -> dg.DagsterRun | None:
    runs = instance.get_runs(limit=1)
    return runs[0] if runs else None


@dataclass(frozen=True)
class TableRun:
    """One table's materialization in a run: what its job reported, and its step's wall time."""

    table: str
    report: BuildReport
    started: float  # the step's start and end, wall-clock timestamps
    ended: float

    @property
    def step_seconds(self) -> float:
        return self.ended - self.started


STEP_EVENTS = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}


def step_times(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    """Step key -> (start, end) wall-clock timestamps, for steps that finished."""
    starts, ends = {}, {}
    for record in instance.get_records_for_run(run_id, of_type=STEP_EVENTS).records:
        entry = record.event_log_entry
        event = entry.dagster_event
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = entry.timestamp
        else:
            ends[event.step_key] = entry.timestamp
    return {step: (starts[step], ends[step]) for step in ends if step in starts}


def step_report(instance: dg.DagsterInstance, run_id: str, step_key: str, start: float, end: float) -> BuildReport | None:
    """What the table of step `step_key` (which ran from `start` to `end`) reported in the run,
    read from one of its materializations (a daily table's days share one write, so one
    report), or None if it materialized none."""
    window = dg.AssetRecordsFilter(asset_key=dg.AssetKey(step_key.split("__")),
                                   after_timestamp=start - 1, before_timestamp=end + 1)
    for record in instance.fetch_materializations(window, limit=1).records:
        if record.run_id == run_id:
            metadata = record.asset_materialization.metadata
            return BuildReport.from_metadata({k: v.value for k, v in metadata.items()})
    return None


def table_runs(instance: dg.DagsterInstance, run_id: str) -> list[TableRun]:
    """What each table materialized in the run wrote, in the order they finished; reads the
    steps' events and one materialization a table, not a daily table's thousands."""
    rows = []
    for step, (start, end) in sorted(step_times(instance, run_id).items(), key=lambda item: item[1][1]):
        report = step_report(instance, run_id, step, start, end)
        if report is not None:
            rows.append(TableRun(table=step.replace("__", "."), report=report, started=start, ended=end))
    return rows


def format_table_runs(rows: list[TableRun]) -> str:
    """A plain-text table: one line per table."""
    header = f"{'table':<32} {'version':>7} {'rows':>10} {'seconds':>8}  inputs read (Delta version)"
    lines = [header, "-" * len(header)]
    for row in rows:
        inputs = ", ".join(f"{name}@v{v}" for name, v in sorted(row.report.input_versions.items()))
        lines.append(
            f"{row.table:<32} {row.report.delta_version:>7} {row.report.row_count:>10} "
            f"{row.step_seconds:>8.1f}  {inputs or 'landing files'}"
        )
    return "\n".join(lines)
