"""`make bench TARGETS=incremental`: one new day landed through to gold, against a full rebuild.

On a copy of the benchmark's landing area and a fresh instance and warehouse: a first build of
everything and one new day through `make update` (both untimed, so that the server has run
each path once), then `scripts.landing next-day` and `make update` (timed: the incremental
path), then `scripts.update --full-refresh` (timed: every table from all its inputs). Prints
each pass's wall time, and per table the days rebuilt, its step's and build's seconds, the
landing files and bytes ingested (the job's report) and the bytes written (Delta's commit metrics); last, `incremental/full wall ratio: X.XX`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from jobs.contract import BuildReport
from resources.paths import PROJECT_DIR
from scripts.runs import RANGE_END, RANGE_START, TableRun, table_runs
from scripts.setup_local import link_instance_config


def bench_incremental(work: Path, landing: Path) -> None:
    root = work / "incremental"
    shutil.copytree(landing, root / "landing")  # next-day adds files to it
    link_instance_config(root / "home")
    env = {**os.environ, "DAGSTER_HOME": str(root / "home"), "PLATFORM_WAREHOUSE_DIR": str(root / "warehouse"),
           "PLATFORM_LANDING_DIR": str(root / "landing")}
    _command(env, "scripts.update")
    # The first build ran the full refresh's code on the server (the JVM compiles what it runs
    # often): one untimed day does the same for the incremental path.
    _command(env, "scripts.landing", "next-day")
    _command(env, "scripts.update")
    landed = _command(env, "scripts.landing", "next-day").strip()
    print(f"  {landed} (after one untimed day)")
    passes = {}
    for label, args in (("incremental (next day, make update)", ()), ("full refresh", ("--full-refresh",))):
        with dg.DagsterInstance.from_config(str(root / "home")) as instance:
            before = {run.run_id for run in instance.get_runs()}
        started = time.monotonic()
        _command(env, "scripts.update", *args)
        passes[label] = time.monotonic() - started
        with dg.DagsterInstance.from_config(str(root / "home")) as instance:
            runs = [r for r in reversed(instance.get_runs()) if r.run_id not in before]
            print(f"  {label}: {passes[label]:.1f} s, {len(runs)} runs")
            for run in runs:
                days = f"days {run.tags[RANGE_START]}...{run.tags[RANGE_END]}" if RANGE_START in run.tags else "unpartitioned"
                for row in table_runs(instance, run.run_id):
                    print(f"    {row.table:<34} {days:<26} {_seconds(row)}; {_bytes(row.report)}")
    incremental, full = passes.values()
    print(f"  incremental/full wall ratio: {incremental / full:.2f}")


def _seconds(row: TableRun) -> str:
    return (f"step {row.step_seconds:.1f} s (build {row.report.build_seconds:.1f} s, of which checks "
            f"{row.report.check_seconds:.1f} s)")


def _bytes(report: BuildReport) -> str:
    read = "" if report.ingested_bytes is None else f"read {report.ingested_files} landing files, {report.ingested_bytes:,} B; "
    return f"{read}wrote {report.bytes_written:,} B (Delta version {report.delta_version})"


def _command(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout
