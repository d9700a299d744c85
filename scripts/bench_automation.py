"""The automation figures of `make bench TARGETS=automation`.

Trigger latency: a real `dagster-daemon` at the shipped evaluation interval, on a fresh
instance and warehouse. Each update commits a new version of the external nation table and
measures, from the commit, when the daemon observed it, requested the run of its readers, and
the run started; the next update waits for that run to finish.

Observation cost: the observation sensor's own function over 1, 100 and 1,000 external Delta
tables in one evaluation (first sight: every table new; steady state: none changed), and the
time to record the new observations in a SQLite instance, as the daemon does after a tick.
"""

from __future__ import annotations

import logging
import os
import shutil
import statistics
import time
from pathlib import Path

import dagster as dg
import pyarrow as pa
from deltalake import write_deltalake

from jobs.table import ExternalTable
from jobs.table import external_table_path
from platform_assets.definitions import automation_interval_seconds
from platform_assets.source_sensor import new_observations
from platform_assets.sources import Source
from resources.landing_area import LandingArea
from resources.paths import PROJECT_DIR
from scripts.landing import rename_nation
from scripts.service import Service, finished_runs, sensor_ticks

NATION = dg.AssetKey(["main", "ingest", "nation"])
GOLD = dg.AssetKey(["main", "gold", "daily_nation_revenue"])


def trigger_latency(work: Path, landing: Path, updates: int,
                    interval: int) -> tuple[float, list[dict[str, float]]]:
    """Seconds from landed files to every table and day built (the daemon's first build), and
    from each nation commit to its observation, the first run's request and start, and every
    day of gold rebuilt; each update waits for the previous one's runs to settle."""
    home, warehouse, live_landing = work / "dagster_home", work / "warehouse", work / "landing"
    home.mkdir(parents=True)
    shutil.copy(PROJECT_DIR / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PLATFORM_WAREHOUSE_DIR": str(warehouse),
           "PLATFORM_LANDING_DIR": str(live_landing)}
    daemon = Service.daemon(env, work / "daemon.log")
    samples = []
    with dg.DagsterInstance.from_config(str(home)) as instance:
        daemon.start()
        try:
            daemon.wait_for(lambda: sensor_ticks(instance, "table_automation"), 120, "the first tick")
            shutil.copytree(landing, work / "staging")
            delivered = time.time()
            (work / "staging").rename(live_landing)
            daemon.wait_for(lambda: instance.get_latest_materialization_event(GOLD) and finished_runs(instance),
                            900, "the first build")
            first_build = time.time() - delivered
            names = ("GERMANY", "DEUTSCHLAND")
            for update in range(updates):
                runs_before = len(instance.get_runs())
                committed = time.time()
                rename_nation(live_landing, names[update % 2], names[1 - update % 2])
                daemon.wait_for(lambda: _gold_after(instance, committed) and finished_runs(instance),
                                900, "gold rebuilt after the commit")
                # Settled: nothing more starts within two evaluation intervals.
                time.sleep(2 * interval + 2)
                runs = daemon.wait_for(lambda: finished_runs(instance), 900, "the runs to finish")
                first = instance.get_run_record_by_id(runs[runs_before].run_id)
                observed = instance.fetch_observations(NATION, limit=1).records[0].timestamp
                samples.append({
                    "observed": observed - committed,
                    "requested": first.create_timestamp.timestamp() - committed,
                    "started": first.start_time - committed,
                    "gold": _gold_after(instance, committed) - committed,
                    "runs": len(runs) - runs_before,
                })
                print(f"    update {update + 1}: observed {samples[-1]['observed']:.1f} s, "
                      f"first run requested {samples[-1]['requested']:.1f} s, "
                      f"started {samples[-1]['started']:.1f} s, every day of gold rebuilt "
                      f"{samples[-1]['gold']:.1f} s, {samples[-1]['runs']} runs", flush=True)
        finally:
            daemon.stop()
    return first_build, samples


def _gold_after(instance: dg.DagsterInstance, moment: float) -> float | None:
    """When gold last materialized, if that was after `moment`."""
    event = instance.get_latest_materialization_event(GOLD)
    return event.timestamp if event and event.timestamp > moment else None


def observation_cost(work: Path, counts: tuple[int, ...] = (1, 100, 1000)) -> list[dict[str, float]]:
    """Seconds for one sensor evaluation over `count` external tables, and to record them."""
    results = []
    log = logging.getLogger("bench")
    for count in counts:
        landing = LandingArea(path=str(work / f"external_{count}"), settle_seconds=0)
        tables = [ExternalTable(f"ingest.table_{i:04d}") for i in range(count)]
        row = pa.table({"id": [1]})
        for table in tables:
            write_deltalake(external_table_path(landing.path, table.name), row)
        sources = [Source(key=dg.AssetKey(["main", *t.name.split(".")]), table=t) for t in tables]

        started = time.monotonic()
        events, seen = new_observations(sources, landing, {}, log)
        first = time.monotonic() - started
        with dg.DagsterInstance.from_config(_fresh_home(work / f"home_{count}")) as instance:
            started = time.monotonic()
            for event in events:
                instance.report_runless_asset_event(event)
            record = time.monotonic() - started
        started = time.monotonic()
        unchanged, _ = new_observations(sources, landing, seen, log)
        steady = time.monotonic() - started
        assert len(events) == count and not unchanged
        results.append({"tables": count, "first": first, "record": record, "steady": steady})
    return results


def print_automation(work: Path, landing: Path, updates: int) -> None:
    interval = automation_interval_seconds()
    print(f"  trigger latency, {updates} commits to main.ingest.nation, evaluation interval {interval} s:")
    first_build, samples = trigger_latency(work / "latency", landing, updates, interval)
    print(f"    landed files -> every table and every day of gold built by the daemon: {first_build:.1f} s")
    print(f"    runs per commit: {statistics.median(sample['runs'] for sample in samples):.0f} (median)")
    for stage in ("observed", "requested", "started", "gold"):
        values = sorted(sample[stage] for sample in samples)
        p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
        print(f"    commit -> {stage:9s}: p50 {statistics.median(values):5.1f} s  p95 {p95:5.1f} s  "
              f"max {values[-1]:5.1f} s")
    print("  observing external Delta tables in one evaluation (deltalake, no Spark):")
    for row in observation_cost(work / "observe"):
        print(f"    {row['tables']:5d} tables: first sight {row['first']:6.2f} s "
              f"(+ {row['record']:5.2f} s recording them), unchanged {row['steady']:6.2f} s "
              f"({1000 * row['steady'] / row['tables']:.1f} ms per table)")


def _fresh_home(path: Path) -> str:
    path.mkdir(parents=True)
    (path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return str(path)
