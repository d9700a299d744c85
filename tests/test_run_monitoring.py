"""Runs that lose their process end: a real `dagster-daemon` on the shipped instance file (SQLite,
then PostgreSQL) launches runs of tests/monitored_defs.py (a step that waits in the platform's `spark_jobs`
pool), and the test kills the run worker or the code server under them."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psutil
import pytest

from resources.paths import PROJECT_DIR
from scripts.service import Service
from tests.instances import STORAGES, new_home

# Measured on 2 cores: the daemon launches a requested run 10-20 s after it starts and marks a
# run failed 1-2 s after its worker is killed, or within a monitoring poll of its maximum
# runtime; it frees an ended run's slots within a poll of dagster.yaml's
# free_slots_after_run_end_seconds. Three times that, and more.
LAUNCH_BOUND_SECONDS = 120
WORKER_GONE_BOUND_SECONDS = 60
MAX_RUNTIME_SECONDS = 20
POLL_SECONDS = 15  # dagster.yaml's run_monitoring
SLOTS_FREED_BOUND_SECONDS = 3 * (10 + POLL_SECONDS)
WORKSPACE = f"""\
load_from:
  - python_module:
      module_name: tests.monitored_defs
      working_directory: {PROJECT_DIR}
"""


@dataclass
class Monitored:
    instance: dg.DagsterInstance
    daemon: Service
    triggers: Path

    def start_run(self, key: str, max_runtime: int | None = None) -> tuple[str, psutil.Process]:
        """Have the daemon launch a run; return its id and its run worker once its step waits."""
        (self.triggers / f"{key}.run").write_text(str(max_runtime or ""))

        def worker():
            runs = self.instance.get_runs(dg.RunsFilter(tags={"dagster/run_key": key}))
            pid_file = self.triggers / f"{runs[0].run_id}.pid" if runs else None
            return (runs[0].run_id, psutil.Process(int(pid_file.read_text()))) if pid_file and pid_file.exists() else None

        return self.daemon.wait_for(worker, LAUNCH_BOUND_SECONDS, f"run {key} to start")

    def wait_until_ended(self, run_id: str, timeout: float) -> dg.DagsterRun:
        return self.daemon.wait_for(lambda: (run := self.instance.get_run_by_id(run_id)).is_finished and run,
                                    timeout, f"run {run_id} to end")

    def messages(self, run_id: str) -> list[str]:
        return [e.dagster_event.message or "" for e in self.instance.all_logs(run_id) if e.dagster_event]

    def slots_held(self, run_id: str) -> list:
        info = self.instance.event_log_storage.get_concurrency_info("spark_jobs")
        return [slot for slot in info.claimed_slots if slot.run_id == run_id]


@pytest.fixture(scope="module", params=STORAGES)
def monitored(request, tmp_path_factory) -> Monitored:
    root = tmp_path_factory.mktemp(f"monitored_{request.param}")
    home, triggers = new_home(root, request.param, request), root / "triggers"
    triggers.mkdir()
    (root / "workspace.yaml").write_text(WORKSPACE)
    env = {**os.environ, **home.env, "DAGSTER_HOME": str(home.path), "MONITORED_TRIGGERS": str(triggers)}
    daemon = Service.daemon(env, root / "daemon.log", project=root)
    with home.instance() as instance:
        daemon.start()
        try:
            yield Monitored(instance, daemon, triggers)
        finally:
            daemon.stop()
            for pid_file in triggers.glob("*.pid"):  # workers orphaned by a killed code server
                try:
                    psutil.Process(int(pid_file.read_text())).kill()
                except psutil.NoSuchProcess:
                    pass


def test_a_killed_run_worker_fails_its_run_at_once_and_frees_its_slots(monitored):
    run_id, worker = monitored.start_run("worker-killed")
    assert monitored.slots_held(run_id), "the step holds a slot of the spark_jobs pool"

    worker.send_signal(signal.SIGKILL)
    run = monitored.wait_until_ended(run_id, WORKER_GONE_BOUND_SECONDS)

    assert run.status == dg.DagsterRunStatus.FAILURE
    assert any("was terminated by signal 9 (SIGKILL)" in m for m in monitored.messages(run_id))
    monitored.daemon.wait_for(lambda: not monitored.slots_held(run_id), SLOTS_FREED_BOUND_SECONDS, "its slots to be freed")


def test_a_run_whose_code_server_died_fails_at_its_maximum_runtime_and_frees_its_slots(monitored):
    run_id, worker = monitored.start_run("server-killed", max_runtime=MAX_RUNTIME_SECONDS)
    code_server = worker.parent()
    assert "grpc" in " ".join(code_server.cmdline())

    code_server.send_signal(signal.SIGKILL)
    run = monitored.wait_until_ended(run_id, 3 * (MAX_RUNTIME_SECONDS + POLL_SECONDS))

    assert run.status == dg.DagsterRunStatus.FAILURE
    assert any(f"exceeding maximum runtime of {MAX_RUNTIME_SECONDS} seconds" in m for m in monitored.messages(run_id))
    monitored.daemon.wait_for(lambda: not monitored.slots_held(run_id), SLOTS_FREED_BOUND_SECONDS, "its slots to be freed")
