"""The figures of `make bench TARGETS=scale TABLES=N`: automation and loading at N tables.

A throwaway copy of the project (under .local/bench/scale<N>/) gets N more tables, declared the
way a user declares them (scripts/scale_tables.py), beside the five TPC-H tables. Then, on a
fresh instance with the copy's dagster.yaml (its run queue paused, so that requested runs wait
rather than run Spark):
- the definitions load in a new process, as a code server does before it serves;
- a real `dagster-daemon` ticks every sensor until each has ticked a few times with nothing new
  (steady state), then one feed (an external Delta table) gets a new commit at a time: the tick
  that requests its readers, the runs it requests, and the delay from the commit;
- the peak memory of the daemon and of the code server it started;
- the webserver's asset graph page in Chromium, until its nodes are drawn.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import psutil
import pyarrow as pa
import yaml
from deltalake import write_deltalake

from jobs.table import external_table_path
from resources.paths import PROJECT_DIR
from scripts.scale_tables import LAYER_WIDTH, SIX_YEARS, declare_tables, feeds, scale_tables
from scripts.service import Service, free_port, responds

PROJECT_PARTS = ("jobs", "platform_assets", "platform_instance", "resources", "scripts",
                 "databricks_emulator", "workspace.yaml", "dagster.yaml", "pyproject.toml")
STEADY_TICKS = 5  # ticks per sensor with nothing new, after its first
LOAD_RUNS = 5
UI_WAIT_SECONDS = 300
GIB = 1024**3


def copy_project(target: Path, count: int, days: tuple[str, str] = SIX_YEARS) -> Path:
    """A copy of the project's code with `count` generated tables declared in it, the daily ones
    over `days`."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for part in PROJECT_PARTS:
        source = PROJECT_DIR / part
        if source.is_dir():
            shutil.copytree(source, target / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target / part)
    declare_tables(target / "jobs" / "tables", count, days)
    return target


def paused_instance(home: Path, project: Path) -> None:
    """The project's dagster.yaml with no run allowed to start: automation requests runs, and
    they wait in the queue, in progress as far as automation is concerned."""
    settings = yaml.safe_load((project / "dagster.yaml").read_text())
    settings.setdefault("concurrency", {}).setdefault("runs", {})["max_concurrent_runs"] = 0
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(settings))


def commit_feed(landing: Path, name: str, value: int) -> float:
    """Append a row to feed `name` (an external Delta table); returns when it was committed."""
    write_deltalake(external_table_path(str(landing), name),
                    pa.table({"day": [f"2025-12-{1 + value % 28:02d}"], "value": [value]}), mode="append")
    return time.time()


def load_seconds(project: Path, env: dict[str, str]) -> list[tuple[float, float]]:
    """(import, resolve) seconds, LOAD_RUNS times after one untimed load: a new process importing
    the definitions module (what `dagster asset materialize -m` and a code server pay first),
    then resolving it (asset graph and jobs, as `dagster definitions validate` does)."""
    code = ("import time; from platform_assets.definitions import defs; import dagster as dg; "
            "started = time.perf_counter(); dg.Definitions.validate_loadable(defs); "
            "print(time.perf_counter() - started)")
    subprocess.run([sys.executable, "-c", code], cwd=project, env=env, check=True, capture_output=True)
    seconds = []
    for _ in range(LOAD_RUNS):
        started = time.monotonic()
        out = subprocess.run([sys.executable, "-c", code], cwd=project, env=env, check=True,
                             capture_output=True, text=True).stdout
        wall, resolve = time.monotonic() - started, float(out.split()[-1])
        seconds.append((wall - resolve, resolve))
    return seconds


def dagster_import_seconds(env: dict[str, str]) -> list[float]:
    """The floor under a load: a new process that imports Dagster and nothing of ours."""
    seconds = []
    for _ in range(LOAD_RUNS):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", "import dagster"], env=env, check=True, capture_output=True)
        seconds.append(time.monotonic() - started)
    return seconds


class ProcessPeaks:
    """The peak RSS of the daemon process and of the code servers it starts, sampled."""

    def __init__(self, daemon_pid: int, interval: float = 0.5):
        self.daemon = psutil.Process(daemon_pid)
        self.peaks = {"daemon": 0, "code server": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.peaks["daemon"] = max(self.peaks["daemon"], self.daemon.memory_info().rss)
                for child in self.daemon.children(recursive=True):
                    if "grpc" in " ".join(child.cmdline()):
                        self.peaks["code server"] = max(self.peaks["code server"], child.memory_info().rss)
            except psutil.Error:
                pass  # a process ended while being read
            self._stop.wait(0.5)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        return self.peaks


@dataclass
class Tick:
    sensor: str
    start: float
    seconds: float
    runs: tuple[str, ...]
    failed: bool


def ticks(instance: dg.DagsterInstance, sensors: set[str]) -> list[Tick]:
    """Every finished tick of these sensors, oldest first."""
    found = []
    for state in instance.all_instigator_state():
        if state.instigator_name in sensors:
            for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id):
                if tick.end_timestamp is not None:
                    found.append(Tick(state.instigator_name, tick.timestamp, tick.end_timestamp - tick.timestamp,
                                      tuple(tick.run_ids), tick.is_failure))
    return sorted(found, key=lambda t: t.start)


@dataclass
class Landing:
    feed: str
    committed: float
    requested: float  # seconds from the commit to the first run requested
    tick: Tick  # the tick that requested it
    round: list[Tick] = field(default_factory=list)  # every sensor's tick in that round
    tables: int = 0  # tables in the runs that tick requested


def snapshot_and_sensors(project: Path, env: dict[str, str]) -> tuple[int, set[str]]:
    """The size of the definitions snapshot the code server sends the daemon and the webserver
    (through Dagster's internal snapshot class: there is no public route to it), and the names
    of the sensors, from one load of the copy's definitions."""
    code = ("from platform_instance.private_api import RepositorySnap; "
            "from dagster_shared.serdes import serialize_value; from platform_assets.definitions import defs; "
            "print(' '.join(s.name for s in defs.sensors)); "
            "print(len(serialize_value(RepositorySnap.from_def(defs.get_repository_def()))))")
    *_, names, size = subprocess.run([sys.executable, "-c", code], cwd=project, env=env, check=True,
                                     capture_output=True, text=True).stdout.splitlines()
    return int(size), set(names.split())


def bench_scale(work: Path, count: int) -> None:
    """Declare `count` tables in a copy of the project under `work`, and print the figures as
    they are measured."""
    print(f"scale: {count:,} generated tables beside the five, in layers of {LAYER_WIDTH} "
          f"({psutil.cpu_count()} cores)", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    project = copy_project(work / "project", count)
    landing, home = work / "landing", work / "dagster_home"
    feed_names = feeds(count)
    for n, name in enumerate(feed_names):
        commit_feed(landing, name, n)
    paused_instance(home, project)
    env = {**os.environ, "DAGSTER_HOME": str(home), "PLATFORM_LANDING_DIR": str(landing),
           "PLATFORM_WAREHOUSE_DIR": str(work / "warehouse")}
    env.pop("PYTHONPATH", None)
    # Bytecode as a deployment has it: compiled once (by the first load), then read.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # As `make demo` does: the feeds' versions are known before the daemon starts.
    subprocess.run([sys.executable, "-c", "import dagster as dg; from scripts.progress import observe_sources; "
                    "observe_sources(dg.DagsterInstance.get())"], cwd=project, env=env, check=True,
                   stdout=subprocess.DEVNULL)

    loads = load_seconds(project, env)
    imports = [i for i, _ in loads]
    print(f"  definitions load, new process: median {statistics.median(imports):.2f} s "
          f"({', '.join(f'{i:.2f}' for i in imports)}); resolving them then (asset graph, jobs): "
          f"median {statistics.median(r for _, r in loads):.2f} s; a new process importing Dagster alone: "
          f"median {statistics.median(dagster_import_seconds(env)):.2f} s")
    snapshot, sensors = snapshot_and_sensors(project, env)
    print(f"  definitions snapshot (one gRPC message to the daemon, again every minute, and to the webserver): "
          f"{snapshot / 1e6:.1f} MB, {snapshot / (count + 5) / 1e3:.1f} KB a table (Dagster's limit: 100 MB)", flush=True)

    sensors -= {"observe_sources"}
    daemon = Service.daemon(env, work / "daemon.log", project)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        daemon.start()
        peaks = ProcessPeaks(daemon.process.pid)
        try:
            steady = _steady_state(daemon, instance, sensors)
            _print_steady(steady)
            landings = []
            for n, name in enumerate(feed_names):
                landings.append(_landing(daemon, instance, landing, name, n, sensors))
                _print_landing(landings[-1])
            errors = [t for t in ticks(instance, sensors | {"observe_sources"}) if t.failed]
        finally:
            daemon.stop()
            memory = peaks.stop()
    delays = sorted(item.requested for item in landings)
    print(f"  commit -> run requested: p50 {statistics.median(delays):.1f} s, max {delays[-1]:.1f} s")
    print(f"  tick with one source landing: median {statistics.median(i.tick.seconds for i in landings):.2f} s, "
          f"max {max(i.tick.seconds for i in landings):.2f} s")
    print(f"  peak RSS: daemon {memory['daemon'] / GIB:.2f} GiB, code server {memory['code server'] / GIB:.2f} GiB")
    print(f"  sensor errors: {len(errors)}" + (f" (first: {errors[0].sensor})" if errors else ""), flush=True)

    groups = sorted({*(t.schema for t in scale_tables(count)), *(f.split(".")[0] for f in feed_names),
                     "bronze", "silver", "gold", "ingest", "landing"})
    print(f"  asset graph page in Chromium: {_asset_graph_seconds(work, env, project, groups)}")
    automation = {name: seconds for name, seconds in steady.items() if name != "observe_sources"}
    print(f"automation ticks summed at {count} tables: {sum(steady.values()):.2f} s")
    print(f"automation tick at {count} tables: {max(automation.values()):.2f} s")


def _print_steady(steady: dict[str, float]) -> None:
    automation = sorted(seconds for name, seconds in steady.items() if name != "observe_sources")
    print(f"  {len(automation)} automation sensors and observe_sources, ticking at most every "
          f"{os.environ.get('PLATFORM_AUTOMATION_INTERVAL_SECONDS', '4')} s (the sensor daemon's loop: 5 s at "
          f"least, the sensors one after another); steady state (nothing new), median of {STEADY_TICKS} ticks:")
    if len(steady) <= 12:
        for name, seconds in sorted(steady.items()):
            print(f"    {name:28s} {seconds:6.2f} s")
    else:
        print(f"    observe_sources {steady['observe_sources']:.2f} s; automation sensors: median "
              f"{statistics.median(automation):.2f} s, slowest {automation[-1]:.2f} s")
    print(f"    a round of every sensor: {sum(steady.values()):.2f} s of ticks", flush=True)


def _print_landing(item: Landing) -> None:
    print(f"  feed {item.feed} committed: first run requested after {item.requested:.1f} s, by "
          f"{item.tick.sensor}'s tick of {item.tick.seconds:.2f} s ({len(item.tick.runs)} run(s), "
          f"{item.tables} tables); the round of ticks after the commit: "
          f"{sum(t.seconds for t in item.round):.2f} s summed, slowest {max(t.seconds for t in item.round):.2f} s",
          flush=True)


def _steady_state(daemon: Service, instance: dg.DagsterInstance, sensors: set[str]) -> dict[str, float]:
    """Each sensor's median tick once every sensor has ticked STEADY_TICKS times after its first."""
    every = sensors | {"observe_sources"}

    def settled():
        found = ticks(instance, every)
        by_sensor = {name: [t for t in found if t.sensor == name] for name in every}
        if all(len(t) > STEADY_TICKS for t in by_sensor.values()):
            return {name: statistics.median(t.seconds for t in found[-STEADY_TICKS:])
                    for name, found in by_sensor.items()}
        return None

    return daemon.wait_for(settled, 900, f"{STEADY_TICKS + 1} ticks of every sensor")


def _landing(daemon: Service, instance: dg.DagsterInstance, landing: Path, feed: str, n: int,
             sensors: set[str]) -> Landing:
    runs_before = {run.run_id for run in instance.get_runs()}
    committed = commit_feed(landing, feed, 1000 + n)
    run = daemon.wait_for(lambda: next((r for r in instance.get_runs() if r.run_id not in runs_before), None),
                          300, f"a run after feed {feed}'s commit")
    created = instance.get_run_record_by_id(run.run_id).create_timestamp.timestamp()
    tick = daemon.wait_for(lambda: next((t for t in ticks(instance, sensors) if run.run_id in t.runs), None),
                           300, f"the tick that requested run {run.run_id}")
    tables = sum(len(instance.get_run_by_id(r).asset_selection or ()) for r in tick.runs)

    def round_after_commit() -> dict[str, Tick] | None:
        first: dict[str, Tick] = {}
        for t in ticks(instance, sensors):
            if t.start >= committed:
                first.setdefault(t.sensor, t)
        return first if len(first) == len(sensors) else None

    ticked = daemon.wait_for(round_after_commit, 600, "a tick of every sensor after the commit")
    return Landing(feed, committed, created - committed, tick, list(ticked.values()), tables)


def _asset_graph_seconds(work: Path, env: dict[str, str], project: Path, groups: list[str]) -> str:
    """Seconds until the webserver's asset graph page shows its nodes in Chromium: the page as
    it opens (a node per group, folded), then with every group unfolded (a node per table). The
    page draws only the nodes in its viewport: this waits for the first ones."""
    chromium = shutil.which("chromium")
    if chromium is None:
        return "not measured (Chromium is not installed: Debian's package `chromium`)"
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    port = free_port()
    server = Service.webserver(env, work / "webserver.log", port, project)
    url = f"http://127.0.0.1:{port}"
    server.start()
    # A node is a foreignObject in the graph's SVG; zoomed out to fit thousands of tables, the
    # page draws a group without the text the smaller graphs show.
    nodes = "() => document.querySelectorAll('svg foreignObject').length"
    try:
        server.wait_for(lambda: responds(f"{url}/server_info"), 900, "the webserver")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1800, "height": 1200})
            started = time.monotonic()
            page.goto(f"{url}/asset-groups", timeout=UI_WAIT_SECONDS * 1000)
            page.wait_for_function(f"() => ({nodes})() >= {len(groups)}", timeout=UI_WAIT_SECONDS * 1000)
            folded = f"{time.monotonic() - started:.1f} s until its {len(groups)} groups are drawn"
            started = time.monotonic()
            page.goto(f"{url}/asset-groups?expanded=" + ",".join(f"global@global:{g}" for g in groups),
                      timeout=UI_WAIT_SECONDS * 1000)
            try:
                page.wait_for_function(f"() => ({nodes})() > 0", timeout=UI_WAIT_SECONDS * 1000)
                unfolded = f"{time.monotonic() - started:.1f} s"
            except PlaywrightTimeout:
                unfolded = f"not within {UI_WAIT_SECONDS} s"
            page.screenshot(path=str(work / "asset_graph.png"))
            browser.close()
        return (f"{folded}; with every group unfolded, until the tables in view are drawn: {unfolded} "
                f"(screenshot {work / 'asset_graph.png'})")
    finally:
        server.stop()
