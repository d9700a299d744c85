"""Run the CLI and follow its run in the instance's event log, printing a line as each table
starts and ends; record the sources' versions first, as the observation sensor would."""

from __future__ import annotations

import logging
import subprocess
import time

import dagster as dg

from jobs.contract import BuildReport
from jobs.registry import discover
from platform_assets.definitions import setting, sources
from platform_assets.source_sensor import new_observations, recorded_versions
from platform_assets.sources import DATA_VERSION_TAG
from resources.landing_area import LandingArea
from resources.paths import PROJECT_DIR, landing_dir
from scripts.runs import latest_run

_STEP_EVENTS = {
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.ASSET_MATERIALIZATION,
    dg.DagsterEventType.STEP_FAILURE,
}


def follow(instance: dg.DagsterInstance, process: subprocess.Popen, after: str | None,
           poll_seconds: float = 0.5) -> dg.DagsterRun | None:
    """While `process` creates and executes a run, print each table's start and end; return the
    run (the newest one that is not `after`), or None if the process started none."""
    run, cursor, started, reported = None, None, {}, set()
    while True:
        done = process.poll() is not None
        if run is None:
            newest = instance.get_runs(limit=1)
            if newest and newest[0].run_id != after:
                run = newest[0]
        if run is not None:
            records = instance.get_records_for_run(run.run_id, cursor=cursor, of_type=_STEP_EVENTS)
            cursor = records.cursor
            for record in records.records:
                _print_event(record.event_log_entry, started, reported)
        if done:
            return run if run is None else instance.get_run_by_id(run.run_id)
        time.sleep(poll_seconds)


def _print_event(entry: dg.EventLogEntry, started: dict[str, float], reported: set) -> None:
    event = entry.dagster_event
    table = event.step_key.replace("__", ".")
    if event.event_type == dg.DagsterEventType.STEP_START:
        started[table] = entry.timestamp
        print(f"  {_clock(entry)}  started   {table}", flush=True)
    elif event.event_type == dg.DagsterEventType.STEP_FAILURE:
        print(f"  {_clock(entry)}  FAILED    {table}: {event.event_specific_data.error.message.strip()[:300]}",
              flush=True)
    elif table not in reported:  # a daily table reports one materialization per day: print the first
        reported.add(table)
        report = BuildReport.from_metadata({k: v.value for k, v in entry.asset_materialization.metadata.items()})
        seconds = entry.timestamp - started.get(table, entry.timestamp)
        print(f"  {_clock(entry)}  finished  {table}: Delta version {report.delta_version}, "
              f"{report.row_count:,} rows, {seconds:.1f} s", flush=True)


def _clock(entry: dg.EventLogEntry) -> str:
    return time.strftime("%H:%M:%S", time.localtime(entry.timestamp))


def run_with_progress(instance: dg.DagsterInstance, command: list[str], log) -> tuple[dg.DagsterRun | None, int]:
    """Run `command`, printing each table's start and end; return its run and exit code."""
    previous = latest_run(instance)
    with log.open("a") as output:
        process = subprocess.Popen(command, cwd=PROJECT_DIR, stdout=output, stderr=subprocess.STDOUT)
        run = follow(instance, process, after=previous.run_id if previous else None)
    return run, process.returncode


def observe_sources(instance: dg.DagsterInstance) -> None:
    """Record the versions of the landing files and external tables, as the observation sensor
    would: the jobs then pin them, and a daemon started later does not take them for new."""
    observed = sources(discover(), setting("PLATFORM_CATALOG", "main"))
    seen = recorded_versions(instance, observed)
    # No settle time: landing files arrive whole (generated, or renamed into place).
    landing = LandingArea(path=landing_dir(), settle_seconds=0)
    events, _ = new_observations(observed, landing, seen, logging.getLogger("observe"))
    for event in events:
        instance.report_runless_asset_event(event)
        print(f"observed {event.asset_key.to_user_string()}: version {event.tags[DATA_VERSION_TAG]}")
