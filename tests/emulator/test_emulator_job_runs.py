"""Jobs defined with jobs/create, and runs, as the real databricks-sdk sees them through the
emulator.

Every task is a tiny script on one shared job cluster that appends a JSON line (its
arguments, environment and clock) to <out>/<task_key>.jsonl, so a test sees both what the
API reports and what actually ran.
"""

import json
import os
import sys
from pathlib import Path

import pytest
from databricks.sdk.errors import BadRequest, ResourceDoesNotExist
from databricks.sdk.service import jobs

from databricks_emulator import DatabricksEmulator

from .test_emulator import NEW_CLUSTER, TOKEN, client, put_script, wait

SHARED = {"job_cluster_key": "shared",
          "new_cluster": {**NEW_CLUSTER, "spark_version": "16.4.x-scala2.12",
                          "spark_env_vars": {"GREETING": "from the job cluster"}}}

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


def diamond(script: str, out: Path, seconds: float = 0) -> list[dict]:
    """a -> b -> c, and d on its own; b and d take `seconds`."""
    return [task("a", script, out), task("b", script, out, seconds, depends_on=["a"]),
            task("c", script, out, depends_on=["b"]), task("d", script, out, seconds)]


def create_job(w, tasks: list[dict], name: str = "platform", job_clusters=(SHARED,), **settings) -> int:
    return w.jobs.create(
        name=name, tasks=[jobs.Task.from_dict(t) for t in tasks],
        job_clusters=[jobs.JobCluster.from_dict(c) for c in job_clusters], **settings,
    ).job_id


def records(out: Path, key: str) -> list[dict]:
    path = out / f"{key}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- job definitions -------------------------------------------------------------------------

def test_create_get_reset_and_list_jobs(ws, w, script, out):
    job_id = create_job(w, diamond(script, out), name="platform",
                        parameters=[jobs.JobParameterDefinition(name="date", default="2024-01-01")])
    other = create_job(w, [task("a", script, out)], name="other")

    job = w.jobs.get(job_id)
    assert job.settings.name == "platform" and job.settings.max_concurrent_runs == 1
    assert [t.task_key for t in job.settings.tasks] == ["a", "b", "c", "d"]
    assert job.settings.job_clusters[0].job_cluster_key == "shared" and job.created_time > 0
    w.jobs.reset(job_id, jobs.JobSettings.from_dict(
        {"name": "platform", "tasks": [task("a", script, out)], "job_clusters": [SHARED]}))
    assert [t.task_key for t in w.jobs.get(job_id).settings.tasks] == ["a"]
    with pytest.raises(ResourceDoesNotExist):
        w.jobs.get(999999)

    assert [j.job_id for j in w.jobs.list(name="PLATFORM")] == [job_id]  # exact, any case
    assert [j.job_id for j in w.jobs.list(limit=1)] == [job_id, other]  # the SDK follows pages
    assert not next(w.jobs.list(name="platform")).settings.tasks  # without expand_tasks
    assert len(next(w.jobs.list(name="platform", expand_tasks=True)).settings.tasks) == 1
    assert list(w.jobs.list(name="platfor")) == []


@pytest.mark.parametrize("change, message", [
    (lambda tasks, clusters: tasks[1].update(run_if="SOMETIMES"), "run_if"),
    (lambda tasks, clusters: tasks[1].update(job_cluster_key="missing"), "missing"),
    (lambda tasks, clusters: tasks[1].update(new_cluster=NEW_CLUSTER), "exactly one of"),
    (lambda tasks, clusters: tasks[0].update(depends_on=[{"task_key": "zzz"}]), "unknown task zzz"),
    (lambda tasks, clusters: tasks[0].update(depends_on=[{"task_key": "c"}]), "cycle"),
    (lambda tasks, clusters: clusters[0].pop("new_cluster"), "new_cluster is required"),
    (lambda tasks, clusters: clusters.append(dict(clusters[0])), "Duplicate job_cluster_key"),
])
def test_jobs_create_refuses_invalid_settings(w, script, out, change, message):
    tasks, clusters = diamond(script, out), [json.loads(json.dumps(SHARED))]
    change(tasks, clusters)

    with pytest.raises(BadRequest, match=message):
        w.api_client.do("POST", "/api/2.2/jobs/create",
                        body={"name": "bad", "tasks": tasks, "job_clusters": clusters})


def test_job_cluster_keys_are_refused_in_runs_submit(w, script, out):
    with pytest.raises(BadRequest, match="Shared job cluster feature is not supported"):
        w.api_client.do("POST", "/api/2.2/jobs/runs/submit", body={"tasks": [task("a", script, out)]})
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
