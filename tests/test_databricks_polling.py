"""What the steps following one Databricks run ask of the workspace: the run's state once per
interval for every step on a machine, and no message files of a task that has not started."""

import io
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from databricks.sdk import WorkspaceClient

from databricks_emulator import DatabricksEmulator
from jobs.contract import TaskFolder
from resources import databricks_run_state
from resources.databricks_run_state import read_run
from resources.databricks_shared_run import _TaskChannel

from .emulator.test_emulator import TOKEN, client, python_task, submit

RUNS_GET = "/api/2.2/jobs/runs/get"


@pytest.fixture
def emulator(tmp_path, monkeypatch):
    monkeypatch.setattr(databricks_run_state, "CACHE_DIR", tmp_path / "run_states")
    for name in list(os.environ):
        if name.startswith("DATABRICKS_"):
            monkeypatch.delenv(name)
    with start(tmp_path / "ws") as emulated:
        yield emulated


def start(root) -> DatabricksEmulator:
    return DatabricksEmulator(root=root, token=TOKEN, python=sys.executable, env={"PATH": os.environ["PATH"]})


@pytest.fixture
def workspace(emulator) -> WorkspaceClient:
    return client(emulator.host)


def a_run(workspace: WorkspaceClient) -> int:
    script = "/Volumes/main/default/code/wait.py"
    workspace.files.upload(script, io.BytesIO(b"import time\ntime.sleep(30)\n"), overwrite=True)
    return submit(workspace, python_task(script))


def test_steps_reading_a_run_at_once_on_one_machine_make_one_request_per_interval(emulator, workspace):
    run_id = a_run(workspace)
    gets = lambda: len(emulator.requests_to("GET", RUNS_GET))  # noqa: E731
    before = gets()

    with ThreadPoolExecutor(8) as steps:  # each opens the lock file itself, as processes do
        runs = list(steps.map(lambda _: read_run(workspace, run_id, max_age=60), range(8)))

    assert {run.run_id for run in runs} == {run_id}
    assert runs[0].tasks[0].task_key == "main"
    assert gets() == before + 1
    read_run(workspace, run_id, max_age=0)  # older than the interval: read again
    assert gets() == before + 2
    workspace.jobs.cancel_run(run_id)


def test_a_run_state_read_for_another_workspace_is_not_taken(emulator, workspace, tmp_path):
    run_id = a_run(workspace)
    with start(tmp_path / "other") as other:
        other_workspace = client(other.host)
        other_run = a_run(other_workspace)
        assert other_run == run_id  # both emulators number their runs alike

        read_run(workspace, run_id, max_age=60)
        read_run(other_workspace, other_run, max_age=60)

        assert len(other.requests_to("GET", RUNS_GET)) == 1
        other_workspace.jobs.cancel_run(other_run)
    workspace.jobs.cancel_run(run_id)


def test_a_step_asks_for_its_tasks_messages_only_once_the_task_has_started(emulator, workspace):
    folder = TaskFolder.of("/Volumes/main/platform/pipes/shared_runs", 1, 2)
    channel = _TaskChannel(workspace, folder, poll_seconds=0.2)
    reader = channel.reader()
    message = '{"__dagster_pipes_version": "0.1", "method": "closed", "params": {}}'
    workspace.files.upload(f"{folder.messages}/1.json", io.BytesIO(message.encode()), overwrite=True)
    params = {"path": folder.messages}
    downloads = lambda: len(emulator.requests_to("GET", f"/api/2.0/fs/files{folder.messages}/1.json"))  # noqa: E731

    assert reader.download_messages_chunk(1, params) is None  # waiting to start: nothing asked
    assert downloads() == 0
    channel.started.set()
    assert reader.download_messages_chunk(1, params) == message
    assert downloads() == 1
