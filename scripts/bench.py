"""`make bench SF=<scale>`: the whole graph through Dagster, on each target.

local: the graph through Dagster over every day (`make demo`'s two runs) against the
floor, the same five builds (same reads, transforms and Delta writes) in one Spark session in
one process. Both use the warm local Spark server, started before either is timed. Prints wall
times, their ratio, and peak memory (summed RSS and PSS of the process tree plus the Spark
server's).

databricks: the whole graph, then one table, as Databricks job runs against the local workspace
emulator, and the whole graph again with a run per table. Prints cluster starts, runs, API
requests, bytes uploaded, and the orchestration overhead per table: the step's wall time minus
the job's own Spark time (session start and work); last, the cluster starts of the whole
graph's job run.

automation: trigger latency through the real daemon and the cost of observing external
tables (scripts/bench_automation.py).

incremental: one new day landed through to gold with `make update`, over 18 months and 6.5 years
of history, against a full refresh, and the floor of a day on this machine
(scripts/bench_incremental.py).

writes: the seconds checks add to each table's build, and a one-day rebuild of the daily
tables against a rebuild of every day (scripts/bench_writes.py).

heap: the warm Spark server's live heap as it reads 300 tables
(scripts/bench_server_heap.py).

scale: automation and loading with `--tables` more tables declared in a copy of the project,
through the real daemon, webserver and Chromium (scripts/bench_scale.py). No Spark.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psutil

from resources.paths import LOCAL_DIR
from resources.spark_server import LocalSparkServer
from scripts.landing import generate_landing, has_landing
from scripts.runs import table_runs
from scripts import postgres
from scripts.setup_local import link_instance_config

# Puts the event-log timer (a sitecustomize module) into the processes of the timed Dagster run.
EVENT_TIMING_DIR = Path(__file__).parent / "event_timing"

FILES_API = "/api/2.0/fs/files"  # every upload is a Files API PUT to a volume
WARM_UP_PASSES = 2
BENCH_DATABASE = "dagster_bench"  # the PostgreSQL instance's database, emptied at each bench


def uploaded_bytes(requests, directory: str) -> int:
    """Bytes uploaded under a volume directory (the job package's, or the Pipes files')."""
    return sum(len(r.body) for r in requests if r.method == "PUT" and r.path.startswith(FILES_API + directory))


class PeakMemory:
    """Samples processes and all their descendants until stopped: the peak of their summed RSS
    (what `ps` shows; pages shared between processes, such as a forked step's, count once per
    process) and of their summed PSS (shared pages split between the processes sharing them)."""

    def __init__(self, *pids: int, interval: float = 0.2):
        self.roots, self.interval = [psutil.Process(pid) for pid in pids], interval
        self.peak, self.peak_pss = 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            processes = {}
            for root in self.roots:
                try:
                    processes |= {p.pid: p for p in [root, *root.children(recursive=True)]}
                except psutil.Error:
                    pass  # a process ended while being listed
            rss = pss = 0
            for process in processes.values():
                try:
                    memory = process.memory_full_info()
                    rss, pss = rss + memory.rss, pss + memory.pss
                except psutil.Error:
                    pass  # it ended between listing and reading
            self.peak, self.peak_pss = max(self.peak, rss), max(self.peak_pss, pss)
            self._stop.wait(self.interval)

    def stop(self) -> tuple[int, int]:
        """The peaks of summed RSS and summed PSS, in bytes."""
        self._stop.set()
        self._thread.join()
        return self.peak, self.peak_pss


def timed(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
          check: bool = True) -> tuple[float, tuple[int, int], str]:
    """Run `command`; return wall seconds, the peaks of summed RSS and PSS in bytes of its tree
    and the Spark server's, and its stdout. With `check`, a failed command ends the benchmark."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    memory = PeakMemory(process.pid, LocalSparkServer.from_env().status().pid)
    stdout, stderr = process.communicate()
    elapsed, peak = time.monotonic() - started, memory.stop()
    if check and process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{stderr[-5000:]}")
    return elapsed, peak, stdout


@dataclass(frozen=True)
class GraphRun:
    seconds: float
    peak_memory: tuple[int, int]  # summed RSS, summed PSS
    event_seconds: float  # storing Dagster events, summed over every process
    events: int
    event_writes: int
    batch_seconds: float  # of which batches: the planned events, and the per-day materializations
    batch_events: int


def dagster_graph(work: Path, landing: Path, storage: str = "sqlite") -> GraphRun:
    """Materialize every table over every day with `make demo`'s script (two runs:
    full_history) into a fresh instance and warehouse, timing the event-log writes of every
    process. `storage` is the instance's: `sqlite` (the project's dagster.yaml) or `postgres`
    (instances/postgres.yaml on an empty database of the project's PostgreSQL)."""
    home, warehouse = work / f"dagster_home_{storage}", work / f"warehouse_dagster_{storage}"
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(warehouse, ignore_errors=True)
    link_instance_config(home, storage)
    timing = work / "event_timing.log"
    timing.unlink(missing_ok=True)
    env = {**os.environ, "DAGSTER_HOME": str(home), "PLATFORM_WAREHOUSE_DIR": str(warehouse),
           "PLATFORM_LANDING_DIR": str(landing), "PLATFORM_EVENT_TIMING_LOG": str(timing),
           "PYTHONPATH": os.pathsep.join([str(EVENT_TIMING_DIR), os.environ.get("PYTHONPATH", "")])}
    if storage == "postgres":
        env.update(postgres.empty_database(postgres.Dirs.from_env(), BENCH_DATABASE))
    elapsed, peak, _ = timed([sys.executable, "-m", "scripts.demo"], env)
    writes = [line.split() for line in timing.read_text().splitlines()]
    batches = [w for w in writes if w[1] == "store_event_batch"]
    return GraphRun(elapsed, peak, event_seconds=sum(float(w[3]) for w in writes),
                    events=sum(int(w[2]) for w in writes), event_writes=len(writes),
                    batch_seconds=sum(float(w[3]) for w in batches), batch_events=sum(int(w[2]) for w in batches))


def floor(work: Path, landing: Path) -> dict:
    """Build every table over every day in dependency order in this process's one session on
    the warm Spark server."""
    from jobs.contract import SparkTarget
    from jobs.registry import build_order, discover
    from jobs.runtime import build_table, spark_session
    from jobs.warehouse import Days, Warehouse

    started = time.monotonic()
    spark = spark_session(SparkTarget(remote=LocalSparkServer.from_env().ensure_running()))
    warm = time.monotonic()
    declarations = discover()
    tables = declarations.tables
    root = work / "warehouse_floor"
    shutil.rmtree(root, ignore_errors=True)  # each floor writes every table's first version
    warehouse = Warehouse(catalog="main", landing_root=str(landing), root=str(root),
                          external=frozenset(declarations.external))
    builds = {}
    for name in build_order(tables):
        partitions = tables[name].partitions
        days = Days(partitions.column, partitions.start, partitions.end) if partitions else None
        building = time.monotonic()
        build_table(spark, warehouse, tables[name], {}, write_id="floor", declarations=declarations, days=days)
        builds[name] = time.monotonic() - building
    return {"startup": warm - started, "builds": time.monotonic() - warm, "tables": builds}


def databricks_graph(work: Path, landing: Path) -> list[dict]:
    """Materialize the whole graph, then one table, as Databricks job runs against the
    emulator, then the whole graph as a run per table (`run_per_table`); per pass: cluster starts, runs, API requests, bytes uploaded, wall seconds and per-table
    overhead seconds."""
    import dagster as dg

    from platform_assets.table_assets import table_key
    from scripts.runs import materialize_tables
    from scripts.emulated_workspace import ARTIFACTS_DIR, PIPES_VOLUME, emulated_runner, start_emulator

    # Only the figures below, not Dagster's step-by-step log and preview warnings.
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    token = "dapi-benchmark"
    workspace = start_emulator(work / "workspace", token)
    os.environ |= {"DATABRICKS_HOST": workspace.host, "DATABRICKS_TOKEN": token}
    shared = emulated_runner(work / "warehouse_databricks", str(landing))
    per_table = emulated_runner(work / "warehouse_databricks", str(landing), run_per_table=True)
    orders = [table_key("main", "bronze.orders")]
    passes = []
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            for name, selection, runner in [("whole graph", None, shared),
                                            ("one table (bronze.orders)", orders, shared),
                                            ("whole graph, run_per_table", None, per_table)]:
                runs_before, requests_before = len(workspace.runs), len(workspace.requests)
                starts_before = workspace.cluster_start_count
                started = time.monotonic()
                result = materialize_tables(instance, runner, selection, run_config=quiet)
                wall = time.monotonic() - started
                tables = table_runs(instance, result.run_id)
                requests = workspace.requests[requests_before:]
                passes.append({
                    "name": name,
                    "tables": len(tables),
                    "cluster_starts": workspace.cluster_start_count - starts_before,
                    "runs": len(workspace.runs) - runs_before,
                    "requests": len(requests),
                    "package_bytes": uploaded_bytes(requests, ARTIFACTS_DIR),
                    "pipes_bytes": uploaded_bytes(requests, PIPES_VOLUME),
                    "wall": wall,
                    "overheads": [
                        t.step_seconds - t.report.session_seconds - t.report.build_seconds for t in tables
                    ],
                })
    finally:
        workspace.stop()
    return passes


def print_databricks(passes: list[dict]) -> None:
    for figures in passes:
        overheads = figures["overheads"]
        print(f"  databricks target (emulator), {figures['name']}: {figures['tables']} tables in "
              f"{figures['runs']} run(s), {figures['cluster_starts']} cluster start(s), "
              f"{figures['requests']} API requests, {figures['wall']:.1f} s; uploaded: job package "
              f"{figures['package_bytes']:,} bytes, Pipes context files {figures['pipes_bytes']:,} bytes")
        print(f"    orchestration overhead per table (step wall - job's Spark time): "
              f"mean {sum(overheads) / len(overheads):.1f} s, max {max(overheads):.1f} s")
    print(f"  cluster starts per pipeline run: {passes[0]['cluster_starts']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale-factor", type=float, default=0.01)
    parser.add_argument("--floor-only", type=Path, help=argparse.SUPPRESS)  # the floor's own process
    parser.add_argument("--targets", default="local,databricks", help="comma-separated")
    parser.add_argument("--updates", type=int, default=10, help="commits timed by `automation`")
    parser.add_argument("--tables", type=int, default=1000, help="tables declared by `scale`")
    args = parser.parse_args()
    targets = args.targets.split(",")
    if "scale" in targets:  # no Spark, no TPC-H data
        from scripts.bench_scale import bench_scale

        bench_scale(LOCAL_DIR / "bench" / f"scale{args.tables}", args.tables)
        targets.remove("scale")
        if not targets:
            return
    bench = LOCAL_DIR / "bench" / f"sf{args.scale_factor:g}"
    landing = bench / "landing"
    if args.floor_only:
        print(json.dumps(floor(args.floor_only, landing)))
        return

    if not has_landing(landing):
        generate_landing(landing, args.scale_factor)
    work = bench / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    spark = LocalSparkServer.from_env()
    # A server that has run for long (the tests, an earlier scale factor) holds plans and is
    # slower, and can run out of heap at scale factor 1: every benchmark starts from a new one.
    spark.stop()
    print(f"scale factor {args.scale_factor:g} ({psutil.cpu_count()} cores); Spark server "
          f"{spark.ensure_running()} (started again), {spark.threads} threads, {spark.memory} heap")
    if "local" in targets:
        bench_local(work, landing, args)
    if "databricks" in targets:
        print_databricks(databricks_graph(work, landing))
    if "writes" in targets:
        from scripts.bench_writes import bench_writes

        bench_writes(work, landing)
    if "incremental" in targets:
        from scripts.bench_incremental import bench_incremental

        print("incremental: one new day through to gold, against a full refresh")
        bench_incremental(work, args.scale_factor)
    if "databricks-scale" in targets:
        from scripts.bench_databricks_scale import bench_databricks_scale

        bench_databricks_scale(work / "databricks_scale", landing, args.tables)
    if "heap" in targets:
        from scripts.bench_server_heap import bench_server_heap

        bench_server_heap(work)
    if "automation" in targets:
        from scripts.bench_automation import print_automation

        print_automation(work / "automation", landing, args.updates)


def bench_local(work: Path, landing: Path, args: argparse.Namespace) -> None:
    floor_command = [sys.executable, "-m", "scripts.bench", "--scale-factor", str(args.scale_factor),
                     "--floor-only", str(work)]
    # Untimed: a warm server has compiled Spark's and Delta's code paths; a new one spends the
    # first builds doing it, whichever of the two comes first. The JIT is still at it during
    # the second pass, so there are two.
    warm_ups = [timed(floor_command)[0] for _ in range(WARM_UP_PASSES)]
    print(f"  warm-up of the Spark server (the floor, untimed, {WARM_UP_PASSES} passes): "
          + ", ".join(f"{seconds:.1f} s" for seconds in warm_ups))
    graph = dagster_graph(work, landing)
    on_postgres = dagster_graph(work, landing, "postgres")
    floor_seconds, floor_peak, out = timed(floor_command)
    builds = json.loads(out.strip().splitlines()[-1])
    gib = 1024**3
    print(f"  whole graph through Dagster (`make demo`: 2 runs, 5 Pipes jobs, every day): {graph.seconds:7.1f} s  "
          f"peak RSS {graph.peak_memory[0] / gib:.2f} GiB, PSS {graph.peak_memory[1] / gib:.2f} GiB "
          "(Spark server included)")
    for name, run in (("SQLite", graph), ("PostgreSQL", on_postgres)):
        print(f"    instance on {name}: {run.seconds:.1f} s, of which storing Dagster events: {run.event_seconds:.1f} s "
              f"({run.events:,} events in {run.event_writes:,} writes, all processes); the history runs' planned "
              f"events and per-day materializations: {run.batch_seconds:.1f} s ({run.batch_events:,} events)")
    print(f"  floor: one process, one session on the Spark server: "
          f"{floor_seconds:7.1f} s  peak RSS {floor_peak[0] / gib:.2f} GiB, PSS {floor_peak[1] / gib:.2f} GiB "
          "(Spark server included)")
    print(f"    of which session {builds['startup']:.1f} s, five builds {builds['builds']:.1f} s: "
          + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in builds["tables"].items()))
    print(f"  ratio Dagster / floor: {graph.seconds / floor_seconds:.2f}")


if __name__ == "__main__":
    main()
