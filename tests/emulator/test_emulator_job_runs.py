"""Runs as the real databricks-sdk sees them through the emulator: tasks in parallel, the
clusters they start.

Every task is a tiny script that appends a JSON line (its arguments, environment and clock)
to <out>/<task_key>.jsonl, so a test sees both what the API reports and what actually ran.
"""

import json
import os
import sys
from pathlib import Path

import pytest
from databricks.sdk.errors import BadRequest
from databricks.sdk.service import jobs

from databricks_emulator import DatabricksEmulator

from .test_emulator import NEW_CLUSTER, TOKEN, client, put_script, wait

RECORD = """
    import json, os, sys, time
    out, key, seconds, *args = sys.argv[1:]
    started = time.time()
    time.sleep(float(seconds))
    with open(os.path.join(out, key + ".jsonl"), "a") as f:
        f.write(json.dumps({"args": args, "started": started, "ended": time.time(),
                            "greeting": os.environ.get("GREETING"),
                            "runtime": os.environ.get("DATABRICKS_RUNTIME_VERSION")}) + "\\n")
"""


@pytest.fixture
def ws(tmp_path):
    with DatabricksEmulator(root=tmp_path / "ws", token=TOKEN, python=sys.executable,
                            env={"PATH": os.environ.get("PATH", "")},
                            pending_seconds=0.05) as ws:
        yield ws


@pytest.fixture
def w(ws, monkeypatch):
    for name in list(os.environ):
        if name.startswith("DATABRICKS_"):
            monkeypatch.delenv(name)
    return client(ws.host)


@pytest.fixture
def out(tmp_path) -> Path:
    (tmp_path / "out").mkdir()
    return tmp_path / "out"


@pytest.fixture
def script(w) -> str:
    return put_script(w, "/scripts/record.py", RECORD)


def task(key: str, script: str, out: Path, seconds: float = 0, args=(), depends_on=(), **fields) -> dict:
    return {"task_key": key, "job_cluster_key": "shared",
            "spark_python_task": {"python_file": script,
                                  "parameters": [str(out), key, str(seconds), *args]},
            "depends_on": [{"task_key": d} for d in depends_on], **fields}


def records(out: Path, key: str) -> list[dict]:
    path = out / f"{key}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- running ---------------------------------------------------------------------------------

def test_a_submitted_run_starts_one_new_cluster_per_task_and_runs_them_in_parallel(
        ws, w, script, out):
    ws.add_cluster("0101-shared", spark_version="15.4.x-scala2.12")
    tasks = [
        {**task("one", script, out, 0.5), "job_cluster_key": None, "new_cluster": NEW_CLUSTER},
        {**task("two", script, out, 0.5), "job_cluster_key": None, "new_cluster": NEW_CLUSTER},
        {**task("existing", script, out), "job_cluster_key": None, "existing_cluster_id": "0101-shared"},
        {**task("serverless", script, out), "job_cluster_key": None, "environment_key": "default"},
    ]
    tasks = [{k: v for k, v in t.items() if v is not None} for t in tasks]
    environments = [jobs.JobEnvironment.from_dict({"environment_key": "default", "spec": {"client": "2"}})]

    run_id = w.jobs.submit(tasks=[jobs.SubmitTask.from_dict(t) for t in tasks],
                           environments=environments).run_id
    run = wait(w, run_id)

    assert run.state.result_state == jobs.RunResultState.SUCCESS
    # existing_cluster_id and serverless (environment_key) start no cluster
    assert sorted((s.kind, s.key) for s in ws.cluster_starts) == [
        ("new_cluster", "one"), ("new_cluster", "two")]
    one, two = records(out, "one")[0], records(out, "two")[0]
    assert one["started"] < two["ended"] and two["started"] < one["ended"]


def test_job_cluster_keys_are_refused_in_runs_submit(w, script, out):
    with pytest.raises(BadRequest, match="Shared job cluster feature is not supported"):
        w.api_client.do("POST", "/api/2.2/jobs/runs/submit", body={"tasks": [task("a", script, out)]})
