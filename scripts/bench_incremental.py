"""`make bench TARGETS=incremental`: one new day landed through to gold, against a full rebuild.

On a copy of the benchmark's landing area and a fresh instance and warehouse: a first build of
everything and one new day through `make update` (both untimed, so that the server has run
each path once), then `scripts.landing next-day` and `make update` (timed: the incremental
path), then `scripts.update --full-refresh` (timed: every table from all its inputs). Prints
each pass's wall time, and per table the days rebuilt, its step's and build's seconds, the
bytes the Spark server read while the step ran (ServerReads), the landing files and bytes
ingested (the job's report) and the bytes written (Delta's commit metrics).

Then the floor of a day on this machine, each for a day landed after those passes: `make update`
with nothing new (the update's fixed cost); the day's builds as their jobs do them, in one
Spark session (no Dagster); and the day's bare commits, also in one session (each table's new
rows read, transformed and written, nothing else: no checks, no lookups, no commit read back).
Last, `incremental/full wall ratio: X.XX`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import dagster as dg
import psutil

from jobs.contract import BuildReport, SparkTarget, day_ranges
from jobs.landing_files import list_landing, read_with_source
from jobs.registry import Declarations, build_order, discover
from jobs.runtime import build_table, spark_session
from jobs.table import REJECT_COLUMN, IngestNewFiles, LandingFiles, Table
from jobs.warehouse import Days, Warehouse
from resources.paths import PROJECT_DIR
from resources.spark_server import LocalSparkServer
from scripts.landing import day_file, land_next_day
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
        reads = ServerReads(LocalSparkServer.from_env().status().jvm_pid)
        started = time.monotonic()
        _command(env, "scripts.update", *args)
        passes[label] = time.monotonic() - started
        reads.stop()
        with dg.DagsterInstance.from_config(str(root / "home")) as instance:
            runs = [r for r in reversed(instance.get_runs()) if r.run_id not in before]
            lines, total_read = [], 0
            for run in runs:
                days = f"days {run.tags[RANGE_START]}...{run.tags[RANGE_END]}" if RANGE_START in run.tags else "unpartitioned"
                for row in table_runs(instance, run.run_id):
                    server_read = reads.during(row.started, row.ended)
                    total_read += server_read
                    lines.append(f"    {row.table:<34} {days:<26} {_seconds(row)}; {_bytes(row.report, server_read)}")
        print(f"  {label}: {passes[label]:.1f} s, {len(runs)} runs, server read {total_read:,} B in their steps")
        print("\n".join(lines))
    incremental, full = passes.values()
    floor = _floor(root, env)
    print(f"  floor/full wall ratio: {floor / full:.2f} (update with nothing new plus the bare commits)")
    print(f"  incremental/full wall ratio: {incremental / full:.2f}")


def _floor(root: Path, env: dict[str, str]) -> float:
    """Print what a day costs at the least here; return the update's fixed cost plus the day's
    bare commits."""
    started = time.monotonic()
    _command(env, "scripts.update")
    nothing_new = time.monotonic() - started
    print(f"  make update with nothing new: {nothing_new:.1f} s (Python, Dagster, the instance, the sources' versions)")
    declarations = discover()
    warehouse = Warehouse(catalog="main", landing_root=str(root / "landing"), root=str(root / "warehouse"),
                          external=frozenset(declarations.external))
    # The tables an update builds for a new day: the ingestions, then that day of the daily tables.
    tables = declarations.tables
    day_tables = [tables[name] for name in build_order(tables)
                  if isinstance(tables[name].write, IngestNewFiles) or tables[name].partitions is not None]
    spark = spark_session(SparkTarget(remote=LocalSparkServer.from_env().ensure_running()))
    seconds = {}
    for label, build in (("the day's builds as their jobs do them", _build_as_job),
                         ("the day's bare commits (read, transform, write)", _bare_commit)):
        day = land_next_day(root / "landing")
        started = time.monotonic()
        for table in day_tables:
            build(spark, warehouse, declarations, table, day)
        seconds[build] = time.monotonic() - started
        print(f"  {label}, one Spark session, {day}: {seconds[build]:.1f} s")
    spark.stop()
    return nothing_new + seconds[_bare_commit]


def _build_as_job(spark, warehouse: Warehouse, declarations: Declarations, table: Table, day: date) -> None:
    build_table(spark, warehouse, table, {}, f"floor {day}", declarations, _days(table, day))


def _bare_commit(spark, warehouse: Warehouse, declarations: Declarations, table: Table, day: date) -> None:
    """The day's rows of `table` read, transformed and written as one Delta commit, nothing else."""
    days = _days(table, day)
    frames = {}
    for param, source in table.inputs.items():
        if isinstance(source, LandingFiles):
            landed = f"{source.dataset}/{day_file(warehouse.landing_root, source.dataset, day).name}"
            files = [f for f in list_landing(warehouse.landing_root, source.dataset) if f.path == landed]
            frames[param] = read_with_source(spark, warehouse.landing_root, files)
            continue
        frame = warehouse.read_latest(spark, source)
        upstream = declarations.tables.get(source)
        frames[param] = days.on(upstream.partitions.column).select(frame) if upstream and upstream.partitions else frame
    rows = table.transform(**frames)
    if REJECT_COLUMN in rows.columns:
        rows = rows.where(rows[REJECT_COLUMN].isNull()).drop(REJECT_COLUMN)
    writer = rows.write.format("delta").mode("append")
    if days is not None:
        writer = days.select(rows).write.format("delta").mode("overwrite").option("replaceWhere", days.condition)
    writer.save(warehouse.location(table.name))


def _days(table: Table, day: date) -> Days | None:
    if table.partitions is None:
        return None
    [one_day] = day_ranges([day])
    return Days.of(table.partitions.column, one_day)


def _seconds(row: TableRun) -> str:
    return (f"step {row.step_seconds:.1f} s (build {row.report.build_seconds:.1f} s, of which checks "
            f"{row.report.check_seconds:.1f} s)")


def _bytes(report: BuildReport, server_read: int) -> str:
    landing = "" if report.ingested_bytes is None else f" ({report.ingested_files} landing files, {report.ingested_bytes:,} B)"
    return (f"server read {server_read:,} B{landing}; wrote {report.bytes_written:,} B "
            f"(Delta version {report.delta_version})")


class ServerReads:
    """What the Spark server's JVM read, sampled every `interval` seconds until stopped: its
    read_chars (/proc/<pid>/io rchar, every byte its reads returned, from disk or the page
    cache), to give each step the bytes read while it ran (steps run one at a time)."""

    def __init__(self, jvm_pid: int, interval: float = 0.02):
        self._process, self.interval = psutil.Process(jvm_pid), interval
        self._samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._sample()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        self._samples.append((time.time(), self._process.io_counters().read_chars))

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def during(self, start: float, end: float) -> int:
        """Bytes read from the last sample at or before `start` to the first at or after `end`
        (wall-clock timestamps)."""
        before = max((sample for sample in self._samples if sample[0] <= start), default=self._samples[0])
        after = min((sample for sample in self._samples if sample[0] >= end), default=self._samples[-1])
        return after[1] - before[1]


def _command(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout
