"""The running service: a real `dagster-daemon` observes the sources and starts the tables
when their inputs land; the webserver shows the graph. Uses the shipped dagster.yaml and
evaluation interval."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest
from deltalake import DeltaTable

from resources.paths import PROJECT_DIR
from scripts.landing import rename_nation

GOLD = dg.AssetKey(["main", "gold", "daily_nation_revenue"])
CHAIN_BOUND_SECONDS = 420  # an upstream commit to gold written, on 2 cores


@dataclass
class Daemon:
    """`dagster-daemon run` on the project's workspace, with its output in a log file."""

    env: dict[str, str]
    log: Path
    process: subprocess.Popen | None = None

    def start(self) -> None:
        daemon = Path(sys.executable).with_name("dagster-daemon")
        self.process = subprocess.Popen(
            [str(daemon), "run", "-w", "workspace.yaml"], cwd=PROJECT_DIR, env=self.env,
            stdout=self.log.open("a"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def tail(self) -> str:
        return self.log.read_text()[-4000:]


@dataclass
class Live:
    """What the scenario recorded, phase by phase."""

    instance: dg.DagsterInstance
    home: Path
    warehouse: Path
    env: dict[str, str]
    runs_after_landing: list[dg.DagsterRun] = field(default_factory=list)
    runs_after_nation: list[dg.DagsterRun] = field(default_factory=list)
    runs_after_restart: list[dg.DagsterRun] = field(default_factory=list)
    observations_before_restart: int = 0
    observations_after_restart: int = 0
    seconds_to_gold: dict[str, float] = field(default_factory=dict)

    def materialized(self, run: dg.DagsterRun) -> set[str]:
        events = self.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        return {event.asset_materialization.asset_key.to_user_string() for event in events}


def wait_for(condition: Callable[[], object], timeout: float, what: str, daemon: Daemon):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{daemon.tail()}")


def finished_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun] | None:
    """Every run, oldest first, once none is queued or in progress."""
    runs = list(reversed(instance.get_runs()))
    return None if any(not run.is_finished for run in runs) else runs


def ticks(instance: dg.DagsterInstance, sensor: str) -> int:
    states = [s for s in instance.all_instigator_state() if s.instigator_name == sensor]
    return sum(len(instance.get_ticks(s.instigator_origin_id, s.selector_id)) for s in states)


def observation_count(instance: dg.DagsterInstance) -> int:
    keys = [dg.AssetKey(["main", "ingest", "nation"])] + [
        dg.AssetKey(["landing", d]) for d in ("orders", "lineitem", "customer")
    ]
    return sum(len(instance.fetch_observations(k, limit=100).records) for k in keys)


def gold_nations(warehouse: Path) -> set[str]:
    gold = DeltaTable(str(warehouse / "main" / "gold" / "daily_nation_revenue")).to_pyarrow_table()
    return set(gold.column("nation").to_pylist())


@pytest.fixture(scope="module")
def live(tmp_path_factory, landing) -> Live:
    root = tmp_path_factory.mktemp("live")
    home, warehouse, landing_dir = root / "dagster_home", root / "warehouse", root / "landing"
    home.mkdir()
    shutil.copy(PROJECT_DIR / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PLATFORM_WAREHOUSE_DIR": str(warehouse),
        "PLATFORM_LANDING_DIR": str(landing_dir),
    }
    daemon = Daemon(env, root / "daemon.log")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        state = Live(instance, home, warehouse, env)
        daemon.start()
        try:
            # Automation acts on changes it sees after its first evaluation.
            wait_for(lambda: ticks(instance, "table_automation"), 120, "the first automation tick", daemon)

            # The ingestion tool delivers the landing files and the nation table, in one move.
            staging = root / "staging"
            shutil.copytree(landing, staging)
            delivered = time.monotonic()
            staging.rename(landing_dir)
            wait_for(lambda: any(r.asset_selection and GOLD in r.asset_selection for r in instance.get_runs()),
                     CHAIN_BOUND_SECONDS, "a run that builds gold", daemon)
            state.runs_after_landing = wait_for(
                lambda: finished_runs(instance), CHAIN_BOUND_SECONDS, "the landing runs to finish", daemon)
            state.seconds_to_gold["landing"] = time.monotonic() - delivered

            # The nation table gets a correction: a new Delta version.
            committed = time.monotonic()
            rename_nation(landing_dir, "GERMANY", "DEUTSCHLAND")
            wait_for(lambda: len(instance.get_runs()) > len(state.runs_after_landing),
                     CHAIN_BOUND_SECONDS, "a run after the nation commit", daemon)
            state.runs_after_nation = wait_for(
                lambda: finished_runs(instance), CHAIN_BOUND_SECONDS, "the nation runs to finish", daemon)
            state.seconds_to_gold["nation"] = time.monotonic() - committed
            state.observations_before_restart = observation_count(instance)

            # Restart: the daemon resumes from the cursors stored in the instance.
            daemon.stop()
            before = ticks(instance, "table_automation")
            daemon.start()
            wait_for(lambda: ticks(instance, "table_automation") >= before + 3, 120,
                     "three automation ticks after the restart", daemon)
            state.runs_after_restart = finished_runs(instance) or list(reversed(instance.get_runs()))
            state.observations_after_restart = observation_count(instance)
            yield state
        finally:
            daemon.stop()


def test_landed_files_build_the_whole_graph_in_one_run(live):
    [run] = live.runs_after_landing
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert live.materialized(run) == {
        "main/bronze/orders", "main/bronze/lineitem", "main/bronze/customers",
        "main/silver/order_lines", "main/gold/daily_nation_revenue",
    }
    assert live.seconds_to_gold["landing"] < CHAIN_BOUND_SECONDS


def test_a_new_version_of_an_external_table_runs_its_readers_through_to_gold(live):
    new_runs = live.runs_after_nation[len(live.runs_after_landing):]
    assert [live.materialized(run) for run in new_runs] == [
        {"main/bronze/customers", "main/silver/order_lines", "main/gold/daily_nation_revenue"}
    ]
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in new_runs)
    nations = gold_nations(live.warehouse)
    assert "DEUTSCHLAND" in nations and "GERMANY" not in nations


def test_a_restarted_daemon_repeats_no_observation_and_no_run(live):
    assert len(live.runs_after_restart) == len(live.runs_after_nation)
    assert live.observations_after_restart == live.observations_before_restart
