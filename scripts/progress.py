"""Execute a run and follow it in the instance's event log, printing a line as each table
starts and ends; record the sources' versions first, as the observation sensor would."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import dagster as dg

from jobs.registry import discover
from platform_assets.definitions import setting, sources
from platform_assets.source_sensor import new_observations, recorded_versions
from platform_assets.sources import DATA_VERSION_TAG
from resources.landing_area import LandingArea
from resources.paths import landing_dir
from scripts.runs import STEP_EVENTS, execute, latest_run, materialize_command, step_report


def follow(instance: dg.DagsterInstance, finished: Callable[[], bool], after: str | None, out: TextIO,
           poll_seconds: float = 0.5) -> dg.DagsterRun | None:
    """Until `finished()`, print to `out` each table's start and end in the newest run that is
    not `after`; return that run, or None if none was started."""
    run, cursor, started = None, None, {}
    while True:
        done = finished()
        if run is None:
            newest = instance.get_runs(limit=1)
            if newest and newest[0].run_id != after:
                run = newest[0]
        if run is not None:
            records = instance.get_records_for_run(run.run_id, cursor=cursor, of_type=STEP_EVENTS)
            cursor = records.cursor
            for record in records.records:
                _print_event(instance, run.run_id, record.event_log_entry, started, out)
        if done:
            return run if run is None else instance.get_run_by_id(run.run_id)
        time.sleep(poll_seconds)


def _print_event(instance: dg.DagsterInstance, run_id: str, entry: dg.EventLogEntry,
                 started: dict[str, float], out: TextIO) -> None:
    event = entry.dagster_event
    table = event.step_key.replace("__", ".")
    if event.event_type == dg.DagsterEventType.STEP_START:
        started[table] = entry.timestamp
        print(f"  {_clock(entry)}  started   {table}", file=out, flush=True)
    elif event.event_type == dg.DagsterEventType.STEP_FAILURE:
        print(f"  {_clock(entry)}  FAILED    {table}: {event.event_specific_data.error.message.strip()[:300]}",
              file=out, flush=True)
    elif (report := step_report(instance, run_id, event.step_key, started.get(table, entry.timestamp),
                                entry.timestamp)) is not None:
        seconds = entry.timestamp - started.get(table, entry.timestamp)
        print(f"  {_clock(entry)}  finished  {table}: Delta version {report.delta_version}, "
              f"{report.row_count:,} rows, {seconds:.1f} s", file=out, flush=True)


def _clock(entry: dg.EventLogEntry) -> str:
    return time.strftime("%H:%M:%S", time.localtime(entry.timestamp))


def execute_with_progress(instance: dg.DagsterInstance, selection: str, partitions: str | None, log: Path,
                          full_refresh: bool = False) -> dg.DagsterRun | None:
    """`scripts.runs.execute` in this process while its output (Dagster's log, the jobs') goes
    to `log`. Prints the CLI command that starts the same run, each table's start and end, and
    how the run ended; returns the run, or None if none was started."""
    command = materialize_command(selection, partitions, full_refresh)
    print(f"\n{' '.join(['dagster', *command[1:]])}", flush=True)
    started = time.monotonic()
    previous = latest_run(instance)
    finished, followed = threading.Event(), []
    with _output_to(log) as console:
        follower = threading.Thread(target=lambda: followed.append(
            follow(instance, finished.is_set, previous.run_id if previous else None, console)))
        follower.start()
        try:
            execute(instance, selection, partitions, full_refresh)
        finally:
            finished.set()
            follower.join()
    run = followed[0] if followed else None
    if run is not None:
        print(f"run {run.run_id}: {run.status.value} in {time.monotonic() - started:.1f} s")
    return run


@contextlib.contextmanager
def _output_to(log: Path) -> Iterator[TextIO]:
    """This process's stdout and stderr, and so its job processes', appended to `log`; yields
    the console, for progress."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    console = os.fdopen(os.dup(1), "w")
    with log.open("a") as output:
        os.dup2(output.fileno(), 1)
        os.dup2(output.fileno(), 2)
        try:
            yield console
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            console.close()


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
