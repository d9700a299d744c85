"""`make bench TARGETS=incremental`: what one new day costs, over a short and a long history.

For each of two history lengths of the same scale factor, the landing area cut after about 18
months (through SHORT_HISTORY_UNTIL) and the whole 6.5 years (through HISTORY_CUTOFF): a fresh
landing area, instance and warehouse; a first build of everything and one new day through
`make update` (both untimed, so that the server has run each path once); then
`scripts.landing next-day` and `make update`, timed. Prints the update's wall time and, per table,
the days rebuilt, its step's and build's seconds, the bytes the Spark server read while the step
ran (ServerReads), the landing bytes ingested (the job's report), and their ratio.

On the long history, then `scripts.update --full-refresh` (timed: every table from all its
inputs) and the floor of a day on this machine, each for a day landed after those passes:
`make update` with nothing new (the update's fixed cost); the day's builds as their jobs do
them, in one Spark session (no Dagster); the day's bare commits, also in one session (each
table's new rows read, transformed and written, nothing else); and the upkeep that a job adds
after every tenth commit of its table (jobs/upkeep.py), for each of the day's tables.

Ends with `read amplification, full history`, `day bytes read per landed byte, full ÷ short
history` and `incremental/full wall ratio at SF <scale factor>`. With Debian's `strace`, the first
two count what a day's builds read of the tables and landing files (one more day, built in one
session with the server's reads traced per file), apart from the JVM's reads of its own jars,
which come with each job's new session whatever the data; without it, every byte the server read.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import psutil

from jobs.contract import BuildReport, SparkTarget, day_ranges
from jobs.ingestion_record import record_name
from jobs.landing_files import list_landing, read_with_source
from jobs.registry import Declarations, build_order, discover
from jobs.runtime import build_table, rows_of_days, spark_session
from jobs.table import REJECT_COLUMN, IngestNewFiles, LandingFiles, Table
from jobs.upkeep import UPKEEP_EVERY_COMMITS, upkeep
from jobs.warehouse import Days, Warehouse
from resources.paths import PROJECT_DIR
from resources.spark_server import LocalSparkServer
from scripts.landing import HISTORY_CUTOFF, day_file, generate_landing, land_next_day
from scripts.runs import RANGE_END, RANGE_START, TableRun, table_runs
from scripts.setup_local import link_instance_config

SHORT_HISTORY_UNTIL = date(1993, 7, 1)  # about 18 months of TPC-H's orders


@dataclass(frozen=True)
class Pass:
    """One timed `make update`: its wall time, and what the server read and the jobs ingested."""

    seconds: float
    bytes_read: int
    bytes_landed: int


def bench_incremental(work: Path, scale_factor: float) -> None:
    passes, attributed = {}, {}
    for until in (SHORT_HISTORY_UNTIL, HISTORY_CUTOFF):
        root = work / f"incremental-{until}"
        shutil.rmtree(root, ignore_errors=True)
        generate_landing(root / "landing", scale_factor, history_until=until)
        link_instance_config(root / "home")
        env = {**os.environ, "DAGSTER_HOME": str(root / "home"), "PLATFORM_WAREHOUSE_DIR": str(root / "warehouse"),
               "PLATFORM_LANDING_DIR": str(root / "landing")}
        _command(env, "scripts.update")
        # The first build ran the full refresh's code on the server (the JVM compiles what it runs
        # often): one untimed day does the same for the incremental path.
        _command(env, "scripts.landing", "next-day")
        _command(env, "scripts.update")
        landed = _command(env, "scripts.landing", "next-day").strip()
        print(f"  history through {until}: {landed} (after one untimed day)")
        passes[until] = _timed_update(root, env, "next day, make update")
        attributed[until] = _file_reads_of_a_day(root)
    full_history = passes[HISTORY_CUTOFF]
    # root and env are the long history's, the loop's last.
    full_refresh = _timed_update(root, env, "full refresh", "--full-refresh")
    floor = _floor(root, env)
    print(f"  floor/full wall ratio: {floor / full_refresh.seconds:.2f} (update with nothing new plus the bare commits)")
    if None in attributed.values():
        print("  (strace not found: the ratios below count every byte the server's JVM read, its own "
              "jars included; install Debian's strace to count tables and landing files alone)")
        per_landed = {until: p.bytes_read / p.bytes_landed for until, p in passes.items()}
    else:
        per_landed = {until: p.bytes_read / p.bytes_landed for until, p in attributed.items()}
    print(f"  read amplification, full history: {per_landed[HISTORY_CUTOFF]:.1f}")
    print(f"  day bytes read per landed byte, full ÷ short history: "
          f"{per_landed[HISTORY_CUTOFF] / per_landed[SHORT_HISTORY_UNTIL]:.2f}")
    print(f"  incremental/full wall ratio at SF {scale_factor:g}: {full_history.seconds / full_refresh.seconds:.2f}")


def _timed_update(root: Path, env: dict[str, str], label: str, *args: str) -> Pass:
    """Run `scripts.update *args`; print its wall time and what each of its tables read and ingested."""
    with dg.DagsterInstance.from_config(str(root / "home")) as instance:
        before = {run.run_id for run in instance.get_runs()}
    reads = ServerReads(LocalSparkServer.from_env().status().jvm_pid)
    started = time.monotonic()
    _command(env, "scripts.update", *args)
    seconds = time.monotonic() - started
    reads.stop()
    with dg.DagsterInstance.from_config(str(root / "home")) as instance:
        runs = [r for r in reversed(instance.get_runs()) if r.run_id not in before]
        lines, total_read, total_landed = [], 0, 0
        for run in runs:
            days = f"days {run.tags[RANGE_START]}...{run.tags[RANGE_END]}" if RANGE_START in run.tags else "unpartitioned"
            for row in table_runs(instance, run.run_id):
                server_read = reads.during(row.started, row.ended)
                total_read += server_read
                total_landed += row.report.ingested_bytes or 0
                lines.append(f"    {row.table:<34} {days:<26} {_seconds(row)}; {_bytes(row.report, server_read)}")
    ratio = f", {total_read / total_landed:.0f}x the landed {total_landed:,} B" if total_landed else ""
    print(f"  {label}: {seconds:.1f} s, {len(runs)} runs, server read {total_read:,} B in their steps{ratio}")
    print("\n".join(lines))
    return Pass(seconds, total_read, total_landed)


def _file_reads_of_a_day(root: Path) -> Pass | None:
    """Land one more day and build it as its jobs do, in one Spark session, with the server's
    reads traced (strace) and summed per file: the tables' data and Delta logs and the landing
    files, apart from what the JVM reads of itself (its jars, system files, shuffle files).
    Print them per table; return the day's table and landing bytes. None without strace."""
    if shutil.which("strace") is None:
        return None
    declarations = discover()
    warehouse = Warehouse(catalog="main", landing_root=str(root / "landing"), root=str(root / "warehouse"),
                          external=frozenset(declarations.external))
    day = land_next_day(root / "landing")
    spark = spark_session(SparkTarget(remote=LocalSparkServer.from_env().ensure_running()))
    jvm = LocalSparkServer.from_env().status().jvm_pid
    total = landed = 0
    print(f"  {day} again under strace, its builds in one session: bytes read by file")
    for table in _day_tables(declarations):
        with FileReads(jvm, root) as reads:
            build = build_table(spark, warehouse, table, {}, f"traced {day}", declarations, _days(table, day))
        ingested = sum(f.size for f in build.ingested or [])
        total, landed = total + reads.files, landed + ingested
        ratio = f" ({reads.files / ingested:.1f}x the landed {ingested:,} B)" if ingested else ""
        print(f"    {warehouse.full_name(table.name):<34} tables and landing files {reads.files:,} B{ratio}: "
              + ", ".join(f"{kind} {n:,} B" for kind, n in reads.by_kind.items()))
    spark.stop()
    print(f"  the day's tables and landing files: {total:,} B read, {total / landed:.1f}x the landed {landed:,} B")
    return Pass(0.0, total, landed)


class FileReads:
    """The bytes a process's reads returned while the block ran, by what they read (strace)."""

    def __init__(self, pid: int, root: Path):
        self.pid, self.root, self.by_kind = pid, str(root), {}
        self.files = 0

    def __enter__(self) -> "FileReads":
        self._out = Path(tempfile.mkdtemp(suffix=".strace"))
        # One file per thread (-ff): a read interrupted by another thread's would otherwise be
        # split over two lines, and its "resumed" line names neither the file nor, alone, the read.
        self._trace = subprocess.Popen(["strace", "-ff", "-y", "-e", "trace=read,pread64", "-p", str(self.pid),
                                        "-o", str(self._out / "thread")], stderr=subprocess.DEVNULL)
        time.sleep(2)  # attaching to each of the JVM's threads
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.5)
        self._trace.terminate()
        self._trace.wait()
        kinds: dict[str, int] = {}
        for thread in self._out.iterdir():
            for line in thread.read_text(errors="replace").splitlines():
                match = _READ.match(line)
                if match:
                    kind = _kind(match["path"], self.root)
                    kinds[kind] = kinds.get(kind, 0) + int(match["bytes"])
        shutil.rmtree(self._out)
        self.by_kind = dict(sorted(kinds.items(), key=lambda item: -item[1]))
        self.files = sum(n for kind, n in kinds.items() if kind != "the JVM's own")


_READ = re.compile(r"^(?:read|pread64)\(\d+<(?P<path>[^>]*)>.*= (?P<bytes>\d+)$")


def _kind(path: str, root: str) -> str:
    if path.startswith(f"{root}/landing/"):
        return "landing"
    if path.startswith(f"{root}/warehouse/"):
        return "Delta logs" if "/_delta_log/" in path else "table data"
    return "the JVM's own"


def _day_tables(declarations: Declarations) -> list[Table]:
    """The tables an update builds for a new day: the ingestions, then that day of the daily tables."""
    tables = declarations.tables
    return [tables[name] for name in build_order(tables)
            if isinstance(tables[name].write, IngestNewFiles) or tables[name].partitions is not None]


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
    day_tables = _day_tables(declarations)
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
    started = time.monotonic()
    for table in day_tables:
        _upkeep(spark, warehouse, table)
    print(f"  the day's tables' upkeep (jobs/upkeep.py, after every {UPKEEP_EVERY_COMMITS}th commit), "
          f"one Spark session: {time.monotonic() - started:.1f} s")
    spark.stop()
    return nothing_new + seconds[_bare_commit]


def _upkeep(spark, warehouse: Warehouse, table: Table) -> None:
    """What a job's upkeep does to `table` and its record of ingested files, whenever it is due."""
    upkeep(spark, warehouse, table.name, compact=table.clustered_by_day is not None)
    if isinstance(table.write, IngestNewFiles):
        upkeep(spark, warehouse, record_name(table.name), compact=False)


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
        frames[param] = frame if days is None else rows_of_days(frame, days, table, param, declarations.tables.get(source))
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
    landing = ""
    if report.ingested_bytes:
        landing = (f" ({report.ingested_files} landing files, {report.ingested_bytes:,} B: "
                   f"{server_read / report.ingested_bytes:.0f}x)")
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
