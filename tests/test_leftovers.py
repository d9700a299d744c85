"""Nothing keeps billing after its Dagster run ends: a real `dagster-daemon` runs
tests/leftover_defs.py, whose asset starts a Databricks run on the emulator as a table step does,
and the platform's leftover sensors cancel that run once the Dagster run fails or is cancelled
while no step follows it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import psutil
import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.service import compute, jobs

from databricks_emulator import DatabricksEmulator
from resources.paths import PROJECT_DIR
from scripts.service import Service
from tests.instances import new_home

TOKEN = "dapi-leftovers"
# Measured on 2 cores: the daemon launches a requested run 10-20 s after it starts, marks a run
# whose worker died failed within 2 s, and a run-status sensor ticks every 5 s; three times
# that, and more.
LAUNCH_BOUND_SECONDS = 120
CANCELLED_BOUND_SECONDS = 60
WORKSPACE = f"""\
load_from:
  - python_module:
      module_name: tests.leftover_defs
      working_directory: {PROJECT_DIR}
"""


class Leftovers:
    def __init__(self, instance, daemon, triggers, emulator):
        self.instance, self.daemon, self.triggers, self.emulator = instance, daemon, triggers, emulator

    def start_run(self, key: str, selection: str) -> tuple[str, psutil.Process, int]:
        """Have the daemon launch a run; return its id, its run worker and its Databricks run."""
        self.emulator.faults.next_run_hangs()  # the Databricks run goes on until cancelled
        (self.triggers / f"{key}.run").write_text(selection)

        def started():
            runs = self.instance.get_runs(dg.RunsFilter(tags={"dagster/run_key": key}))
            pid_file = self.triggers / f"{runs[0].run_id}.pid" if runs else None
            if not (pid_file and pid_file.exists()):
                return None
            pid, databricks_run, _ = map(int, pid_file.read_text().split())
            return runs[0].run_id, psutil.Process(pid), databricks_run

        return self.daemon.wait_for(started, LAUNCH_BOUND_SECONDS, f"run {key} to start its Databricks run")

    def wait_until_cancelled(self, databricks_run: int) -> None:
        run = self.emulator.runs[databricks_run]
        self.daemon.wait_for(lambda: run.result_state == "CANCELED", CANCELLED_BOUND_SECONDS,
                             f"Databricks run {databricks_run} to be cancelled")


@pytest.fixture(scope="module")
def leftovers(request, tmp_path_factory) -> Leftovers:
    root = tmp_path_factory.mktemp("leftovers")
    home, triggers = new_home(root, "sqlite", request), root / "triggers"
    triggers.mkdir()
    (root / "workspace.yaml").write_text(WORKSPACE)
    with DatabricksEmulator(root / "workspace", token=TOKEN) as emulator:
        client = WorkspaceClient(host=emulator.host, token=TOKEN)
        job_id = client.jobs.create(name="leftovers", tasks=[jobs.Task(
            task_key="t", spark_python_task=jobs.SparkPythonTask(python_file="/Volumes/main/x/y/never_runs.py"),
            new_cluster=compute.ClusterSpec(spark_version="17.3.x-scala2.13", node_type_id="emulated", num_workers=1),
        )]).job_id
        env = {**os.environ, "DAGSTER_HOME": str(home.path), "LEFTOVER_TRIGGERS": str(triggers),
               "LEFTOVER_JOB_ID": str(job_id), "DATABRICKS_HOST": emulator.host, "DATABRICKS_TOKEN": TOKEN}
        dagster = Path(sys.executable).with_name("dagster")
        subprocess.run([str(dagster), "instance", "concurrency", "set", "no_slots", "0"],
                       env=env, check=True, capture_output=True)
        daemon = Service.daemon(env, root / "daemon.log", project=root)
        with home.instance() as instance:
            daemon.start()
            try:
                yield Leftovers(instance, daemon, triggers, emulator)
            finally:
                daemon.stop()
                for pid_file in triggers.glob("*.pid"):  # a step whose run worker was killed
                    try:
                        psutil.Process(int(pid_file.read_text().split()[2])).kill()
                    except psutil.NoSuchProcess:
                        pass


def test_a_killed_run_worker_leaves_no_databricks_run_going(leftovers):
    run_id, worker, databricks_run = leftovers.start_run("worker-killed", "first")

    worker.send_signal(signal.SIGKILL)

    leftovers.wait_until_cancelled(databricks_run)
    assert leftovers.instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE


def test_a_run_terminated_while_its_step_waits_for_a_pool_slot_leaves_no_databricks_run_going(leftovers):
    run_id, _, databricks_run = leftovers.start_run("terminated", "both")
    leftovers.daemon.wait_for(lambda: _waits_for_slot(leftovers.instance, run_id), LAUNCH_BOUND_SECONDS,
                              "the second step to wait for a pool slot")

    assert leftovers.instance.run_launcher.terminate(run_id)

    leftovers.wait_until_cancelled(databricks_run)
    assert leftovers.instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.CANCELED


def _waits_for_slot(instance: dg.DagsterInstance, run_id: str) -> bool:
    return any(entry.dagster_event and entry.dagster_event.step_key == "waits_for_a_pool_slot"
               for entry in instance.all_logs(run_id))
