"""Jobs defined with jobs/create, run with run-now, followed with runs/get and repaired, as
the real databricks-sdk sees them through the emulator.

Every task is a tiny script on one shared job cluster that appends a JSON line (its
arguments, environment and clock) to <out>/<task_key>.jsonl, so a test sees both what the
API reports and what actually ran.
"""

import io
import json
import os
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from databricks.sdk.errors import BadRequest, DatabricksError, ResourceDoesNotExist
from databricks.sdk.service import jobs

from databricks_emulator import ClusterStart, DatabricksEmulator

from .test_emulator import NEW_CLUSTER, TOKEN, alive, client, put_script, wait, wait_for_file

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


def latest(run: jobs.Run) -> dict[str, jobs.RunTask]:
    """The latest attempt of each task. Databricks lists every attempt in `tasks`, the newest
    execution (repair) first, and a repair's attempt_number stays 0: the first one listed is
    the latest."""
    by_key = {}
    for t in run.tasks:
        by_key.setdefault(t.task_key, t)
    return by_key


def attempts_by_execution(run: jobs.Run) -> list[list[str]]:
    """The task keys each execution (the run, then each repair) ran, from repair_history."""
    keys = {t.run_id: t.task_key for t in run.tasks}
    return [[keys[i] for i in h.task_run_ids] for h in run.repair_history]


def results(run: jobs.Run) -> dict[str, str]:
    return {key: t.state.result_state.value for key, t in latest(run).items()}


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

    w.jobs.delete(other)
    assert [j.job_id for j in w.jobs.list()] == [job_id]
    with pytest.raises(DatabricksError, match=f"Job {other} does not exist"):
        w.jobs.delete(other)


def test_runs_list_finds_runs_by_job_type_activity_and_start(ws, w, script, out):
    job_id = create_job(w, [task("a", script, out, seconds=30)])
    running = w.jobs.run_now(job_id).run_id
    submitted = w.jobs.submit(run_name="one-off", tasks=[jobs.SubmitTask.from_dict(
        {"task_key": "x", "new_cluster": NEW_CLUSTER,
         "spark_python_task": {"python_file": script, "parameters": [str(out), "x", "0"]}})]).result()

    assert [r.run_id for r in w.jobs.list_runs(job_id=job_id)] == [running]
    assert [r.run_id for r in w.jobs.list_runs(active_only=True)] == [running]
    (found,) = w.jobs.list_runs(run_type=jobs.RunType.SUBMIT_RUN, expand_tasks=True)
    assert (found.run_id, found.run_name, [t.task_key for t in found.tasks]) == (submitted.run_id, "one-off", ["x"])
    assert [r.run_id for r in w.jobs.list_runs(limit=1)] == [submitted.run_id, running]  # newest first, paged
    assert list(w.jobs.list_runs(start_time_from=found.start_time + 60_000)) == []
    w.jobs.cancel_run(running)


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
# -- running a job ---------------------------------------------------------------------------

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


def test_a_job_on_one_job_cluster_starts_it_once_and_runs_independent_tasks_in_parallel(ws, w, script, out):
    job_id = create_job(w, diamond(script, out, seconds=0.8))

    run_id = w.jobs.run_now(job_id).run_id
    run = wait(w, run_id)

    assert run.state.result_state == jobs.RunResultState.SUCCESS
    assert run.run_type == jobs.RunType.JOB_RUN and run.job_id == job_id
    assert results(run) == {"a": "SUCCESS", "b": "SUCCESS", "c": "SUCCESS", "d": "SUCCESS"}
    assert ws.cluster_starts == [ClusterStart(run_id, "job_cluster", "shared", None)]
    tasks = latest(run)
    assert tasks["b"].start_time < tasks["d"].end_time and tasks["d"].start_time < tasks["b"].end_time
    assert tasks["c"].start_time >= tasks["b"].end_time
    assert tasks["b"].job_cluster_key == "shared" and tasks["b"].depends_on[0].task_key == "a"
    assert tasks["b"].run_if == jobs.RunIf.ALL_SUCCESS and tasks["b"].attempt_number == 0
    (b,) = records(out, "b")
    assert b["runtime"] == "16.4.x-scala2.12" and b["greeting"] == "from the job cluster"


def test_a_job_cluster_start_is_shared_by_the_tasks_that_wait_for_it(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    out = tmp_path / "out"
    out.mkdir()
    with DatabricksEmulator(root=tmp_path / "ws", token=TOKEN, cluster_start_seconds=0.5,
                            pending_seconds=0) as ws:
        w = client(ws.host)
        script = put_script(w, "/scripts/record.py", RECORD)
        job_id = create_job(w, [task("a", script, out), task("b", script, out)])

        run = wait(w, w.jobs.run_now(job_id).run_id)

    assert results(run) == {"a": "SUCCESS", "b": "SUCCESS"}
    assert ws.cluster_start_count == 1
    tasks = latest(run)
    assert min(tasks["a"].start_time, tasks["b"].start_time) - run.start_time >= 450  # cold start


def test_only_runs_the_chosen_tasks_and_treats_other_dependencies_as_met(ws, w, script, out):
    job_id = create_job(w, diamond(script, out))

    run = wait(w, w.jobs.run_now(job_id, only=["b", "c"]).run_id)

    assert run.state.result_state == jobs.RunResultState.SUCCESS
    assert results(run) == {"b": "SUCCESS", "c": "SUCCESS"}
    assert records(out, "a") == [] and records(out, "d") == []
    assert len(records(out, "b")) == 1 and len(records(out, "c")) == 1
    with pytest.raises(BadRequest, match="nope"):
        w.jobs.run_now(job_id, only=["b", "nope"])


def test_a_failing_task_leaves_its_dependents_upstream_failed_and_the_run_failed(ws, w, script, out):
    job_id = create_job(w, diamond(script, out))
    ws.faults.next_task_fails("b", message="Cluster lost: spot instance reclaimed")

    run = wait(w, w.jobs.run_now(job_id).run_id)

    assert run.state.result_state == jobs.RunResultState.FAILED
    assert run.state.state_message == "Workload failed, see run output for details"
    assert results(run) == {"a": "SUCCESS", "b": "FAILED", "c": "UPSTREAM_FAILED", "d": "SUCCESS"}
    assert records(out, "b") == [] and records(out, "c") == []  # neither process started
    output = w.jobs.get_run_output(latest(run)["b"].run_id)
    assert output.error == "Cluster lost: spot instance reclaimed"


def test_run_if_decides_which_tasks_run_after_a_failure(ws, w, script, out):
    tasks = [task("ok", script, out), task("bad", script, out),
             task("all_done", script, out, depends_on=["bad"], run_if="ALL_DONE"),
             task("all_success", script, out, depends_on=["ok", "bad"]),
             task("none_failed", script, out, depends_on=["ok", "bad"], run_if="NONE_FAILED"),
             task("on_failure", script, out, depends_on=["ok", "bad"], run_if="AT_LEAST_ONE_FAILED"),
             task("all_failed", script, out, depends_on=["ok", "bad"], run_if="ALL_FAILED"),
             task("one_success", script, out, depends_on=["ok", "bad"], run_if="AT_LEAST_ONE_SUCCESS")]
    job_id = create_job(w, tasks)
    ws.faults.next_task_fails("bad")

    run = wait(w, w.jobs.run_now(job_id).run_id)

    assert results(run) == {
        "ok": "SUCCESS", "bad": "FAILED", "all_done": "SUCCESS", "all_success": "UPSTREAM_FAILED",
        "none_failed": "UPSTREAM_FAILED", "on_failure": "SUCCESS", "all_failed": "EXCLUDED",
        "one_success": "SUCCESS"}
    assert run.state.result_state == jobs.RunResultState.FAILED


# -- repair ----------------------------------------------------------------------------------

def test_repair_reruns_chosen_tasks_and_dependents_with_current_settings_on_a_new_cluster(
        ws, w, script, out):
    job_id = create_job(w, diamond(script, out))
    ws.faults.next_task_fails("b", message="boom")
    run_id = w.jobs.run_now(job_id).run_id
    failed = latest(wait(w, run_id))
    # The job changes before the repair; the repair runs the job as it is now.
    new_cluster = {**SHARED, "new_cluster": {**SHARED["new_cluster"],
                                            "spark_env_vars": {"GREETING": "after reset"}}}
    w.jobs.reset(job_id, jobs.JobSettings.from_dict({
        "name": "platform", "tasks": diamond(script, out), "job_clusters": [new_cluster]}))

    repair_id = w.jobs.repair_run(run_id, rerun_tasks=["b"], rerun_dependent_tasks=True).response.repair_id
    # At once RUNNING again: a client polling right after the repair never sees the old end.
    assert w.jobs.get_run(run_id).state.life_cycle_state == jobs.RunLifeCycleState.RUNNING
    run = wait(w, run_id)

    assert run.state.result_state == jobs.RunResultState.SUCCESS
    assert results(run) == {"a": "SUCCESS", "b": "SUCCESS", "c": "SUCCESS", "d": "SUCCESS"}
    repaired = latest(run)
    assert sorted(t.task_key for t in run.tasks) == ["a", "b", "b", "c", "c", "d"]  # every attempt
    assert repaired["b"].attempt_number == 0 and repaired["b"].run_id != failed["b"].run_id
    assert repaired["a"].run_id == failed["a"].run_id and repaired["d"].run_id == failed["d"].run_id
    assert len(records(out, "a")) == 1 and len(records(out, "d")) == 1  # kept, not rerun
    assert [r["greeting"] for r in records(out, "b") + records(out, "c")] == ["after reset"] * 2
    assert ws.cluster_starts == [ClusterStart(run_id, "job_cluster", "shared", None),
                                 ClusterStart(run_id, "job_cluster", "shared", repair_id)]
    history = w.jobs.get_run(run_id, include_history=True).repair_history
    assert [(h.type.value, h.id) for h in history] == [("ORIGINAL", None), ("REPAIR", repair_id)]
    assert history[1].task_run_ids == [repaired["b"].run_id, repaired["c"].run_id]
    assert history[0].state.result_state == jobs.RunResultState.FAILED
    assert w.jobs.get_run_output(failed["b"].run_id).error == "boom"  # older attempts stay readable
    assert w.jobs.get_run_output(repaired["b"].run_id).error is None


def test_a_later_repair_needs_the_latest_repair_id_and_an_ended_run(ws, w, script, out):
    job_id = create_job(w, diamond(script, out, seconds=0.5))
    run_id = w.jobs.run_now(job_id).run_id
    with pytest.raises(BadRequest, match="still active"):
        w.jobs.repair_run(run_id, rerun_tasks=["a"])
    wait(w, run_id)
    first = w.jobs.repair_run(run_id, rerun_tasks=["d"]).response.repair_id
    wait(w, run_id)

    with pytest.raises(BadRequest, match="The latest repair ID needs to be provided"):
        w.jobs.repair_run(run_id, rerun_tasks=["d"])
    with pytest.raises(BadRequest, match="latest repair ID"):
        w.jobs.repair_run(run_id, rerun_tasks=["d"], latest_repair_id=first + 1000)
    with pytest.raises(BadRequest, match="nope"):
        w.jobs.repair_run(run_id, rerun_tasks=["nope"], latest_repair_id=first)
    with pytest.raises(BadRequest, match="Only one of"):
        w.jobs.repair_run(run_id, rerun_tasks=["d"], rerun_all_failed_tasks=True, latest_repair_id=first)
    with pytest.raises(BadRequest, match="Either"):
        w.jobs.repair_run(run_id, latest_repair_id=first)
    second = w.jobs.repair_run(run_id, rerun_tasks=["d"], latest_repair_id=first).response.repair_id

    run = wait(w, run_id)
    assert second != first and run.state.result_state == jobs.RunResultState.SUCCESS
    assert [t.attempt_number for t in run.tasks if t.task_key == "d"] == [0, 0, 0]
    assert len(records(out, "d")) == 3


def test_rerun_all_failed_tasks_reruns_the_failed_and_the_upstream_failed(ws, w, script, out):
    job_id = create_job(w, diamond(script, out))
    ws.faults.next_task_fails("a")
    run_id = w.jobs.run_now(job_id).run_id
    assert results(wait(w, run_id)) == {"a": "FAILED", "b": "UPSTREAM_FAILED", "c": "UPSTREAM_FAILED",
                                        "d": "SUCCESS"}

    w.jobs.repair_run(run_id, rerun_all_failed_tasks=True)
    wait(w, run_id)
    run = w.jobs.get_run(run_id, include_history=True)

    assert run.state.result_state == jobs.RunResultState.SUCCESS
    assert attempts_by_execution(run)[1] == ["a", "b", "c"]
    assert len(records(out, "d")) == 1


def test_runs_get_lists_attempts_newest_execution_first_and_repairs_do_not_count_as_retries(
        ws, w, script, out):
    job_id = create_job(w, diamond(script, out))
    ws.faults.next_task_fails("b")
    run_id = w.jobs.run_now(job_id).run_id
    wait(w, run_id)
    first = w.jobs.repair_run(run_id, rerun_tasks=["b"], rerun_dependent_tasks=True).response.repair_id
    wait(w, run_id)
    w.jobs.repair_run(run_id, rerun_tasks=["c"], latest_repair_id=first)
    wait(w, run_id)

    run = w.jobs.get_run(run_id, include_history=True)

    # The newest execution's attempts first, so a task's last-listed attempt is its oldest.
    assert [t.task_key for t in run.tasks] == ["c", "b", "c", "a", "d", "b", "c"]
    assert attempts_by_execution(run) == [["a", "d", "b", "c"], ["b", "c"], ["c"]]
    assert [t.run_id for t in run.tasks] == [
        i for h in reversed(run.repair_history) for i in h.task_run_ids]
    # attempt_number counts retries (max_retries), and a repair is no retry.
    assert {t.attempt_number for t in run.tasks} == {0}
    assert results(run) == {"a": "SUCCESS", "b": "SUCCESS", "c": "SUCCESS", "d": "SUCCESS"}


# -- parameters ------------------------------------------------------------------------------

def test_job_parameters_reach_the_task_and_a_repair_without_them_uses_the_defaults(ws, w, script, out):
    args = ["--date={{job.parameters.date}}", "{{job.id}}", "{{job.run_id}}", "{{task.run_id}}",
            "{{task.name}}", "{{run_id}}", "{{not.a.namespace}}"]
    job_id = create_job(w, [task("load", script, out, args=args)],
                        parameters=[jobs.JobParameterDefinition(name="date", default="2024-01-01")])

    run_id = w.jobs.run_now(job_id, job_parameters={"date": "2024-06-30"}).run_id
    first = wait(w, run_id)
    w.jobs.repair_run(run_id, rerun_tasks=["load"])
    repaired = wait(w, run_id)

    second_task, first_task = repaired.tasks  # the repair's attempt is listed first
    assert [r["args"] for r in records(out, "load")] == [
        ["--date=2024-06-30", str(job_id), str(run_id), str(first_task.run_id), "load",
         str(first_task.run_id), "{{not.a.namespace}}"],
        ["--date=2024-01-01", str(job_id), str(run_id), str(second_task.run_id), "load",
         str(second_task.run_id), "{{not.a.namespace}}"],
    ]
    assert [(p.name, p.default, p.value) for p in first.job_parameters] == [
        ("date", "2024-01-01", "2024-06-30")]
    assert [(p.name, p.value) for p in repaired.job_parameters] == [("date", "2024-01-01")]


def test_a_reference_to_an_undefined_job_parameter_fails_the_task(ws, w, script, out):
    job_id = create_job(w, [task("load", script, out, args=["{{job.parameters.missing}}"])])

    run = wait(w, w.jobs.run_now(job_id).run_id)

    assert run.state.result_state == jobs.RunResultState.FAILED
    assert "{{job.parameters.missing}}" in run.state.state_message
    assert records(out, "load") == []


def test_undeclared_job_parameters_are_refused(ws, w, script, out):
    job_id = create_job(w, [task("load", script, out)],
                        parameters=[jobs.JobParameterDefinition(name="date", default="2024-01-01")])

    with pytest.raises(BadRequest, match="not defined in the job"):
        w.jobs.run_now(job_id, job_parameters={"date": "2024-06-30", "table": "orders"})

    assert ws.runs == {}


def build_argv_wheel(path: Path) -> None:
    """A wheel whose entry point writes its argv to the file in $ARGV_OUT."""
    dist = "argvwheel-0.1.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("argvwheel/__init__.py", textwrap.dedent("""
            import json, os, sys
            def main():
                open(os.environ["ARGV_OUT"], "w").write(json.dumps(sys.argv[1:]))
        """))
        wheel.writestr(f"{dist}/METADATA", "Metadata-Version: 2.1\nName: argvwheel\nVersion: 0.1\n")
        wheel.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{dist}/RECORD", "")


def test_job_parameters_are_pushed_down_into_wheel_tasks_with_named_parameters(ws, w, tmp_path):
    build_argv_wheel(tmp_path / "argvwheel-0.1-py3-none-any.whl")
    wheel = "/Volumes/main/default/libs/argvwheel-0.1-py3-none-any.whl"
    w.files.upload(wheel, io.BytesIO((tmp_path / "argvwheel-0.1-py3-none-any.whl").read_bytes()))
    cluster = {**SHARED, "new_cluster": {**SHARED["new_cluster"],
                                        "spark_env_vars": {"ARGV_OUT": str(tmp_path / "argv.json")}}}
    wheel_task = {"task_key": "load", "job_cluster_key": "shared", "libraries": [{"whl": wheel}],
                  "python_wheel_task": {"package_name": "argvwheel", "entry_point": "main",
                                        "named_parameters": {"table": "orders", "date": "task-level",
                                                             "run": "{{job.run_id}}"}}}
    job_id = create_job(w, [wheel_task], job_clusters=[cluster],
                        parameters=[jobs.JobParameterDefinition(name="date", default="2024-01-01")])

    run_id = w.jobs.run_now(job_id).run_id
    run = wait(w, run_id)

    assert run.state.result_state == jobs.RunResultState.SUCCESS, run.state.state_message
    assert json.loads((tmp_path / "argv.json").read_text()) == [
        "--table=orders", "--date=2024-01-01", f"--run={run_id}"]


# -- idempotency, concurrency, cancel --------------------------------------------------------

def test_a_run_now_retried_after_a_lost_answer_with_its_idempotency_token_makes_one_run(ws, w, script, out):
    job_id = create_job(w, [task("load", script, out)])
    ws.faults.http_error("POST", "/api/2.2/jobs/run-now", status=503, after_handling=True)

    run_id = w.jobs.run_now(job_id, idempotency_token="dagster-run-42").run_id

    assert len(ws.requests_to("POST", "/api/2.2/jobs/run-now")) == 2  # the SDK retried the 503
    assert list(ws.runs) == [run_id]
    assert w.jobs.run_now(job_id, idempotency_token="dagster-run-42").run_id == run_id
    wait(w, run_id)
    assert len(records(out, "load")) == 1


def test_max_concurrent_runs_skips_a_new_run_or_queues_it_when_the_job_queues(ws, w, script, out):
    skipping = create_job(w, [task("load", script, out, seconds=0.5)], name="skipping",
                          queue=jobs.QueueSettings(enabled=False))
    queueing = create_job(w, [task("queued", script, out, seconds=0.5)], name="queueing",
                          queue=jobs.QueueSettings(enabled=True))

    first = w.jobs.run_now(skipping).run_id
    skipped = w.jobs.run_now(skipping).run_id
    ahead = w.jobs.run_now(queueing).run_id
    queued = w.jobs.run_now(queueing).run_id

    assert w.jobs.get_run(skipped).state.life_cycle_state == jobs.RunLifeCycleState.SKIPPED
    assert w.jobs.get_run(skipped).state.result_state == jobs.RunResultState.MAXIMUM_CONCURRENT_RUNS_REACHED
    assert w.jobs.get_run(queued).state.life_cycle_state == jobs.RunLifeCycleState.QUEUED
    assert wait(w, first).state.result_state == jobs.RunResultState.SUCCESS
    assert wait(w, queued).state.result_state == jobs.RunResultState.SUCCESS
    assert wait(w, queued).start_time >= wait(w, ahead).end_time
    assert len(records(out, "load")) == 1 and len(records(out, "queued")) == 2


def test_a_job_created_through_api_2_2_queues_by_default_and_through_2_1_skips(ws, w, script, out):
    queueing = create_job(w, [task("load", script, out, seconds=0.5)], name="queueing")  # SDK: 2.2
    legacy = w.api_client.do("POST", "/api/2.1/jobs/create", body={
        "name": "legacy", "tasks": [task("old", script, out, seconds=0.5)],
        "job_clusters": [SHARED]})["job_id"]

    assert w.jobs.get(queueing).settings.queue.enabled is True
    assert w.jobs.get(legacy).settings.queue is None
    first, second = w.jobs.run_now(queueing).run_id, w.jobs.run_now(queueing).run_id
    legacy_first, legacy_second = w.jobs.run_now(legacy).run_id, w.jobs.run_now(legacy).run_id

    assert w.jobs.get_run(second).state.life_cycle_state == jobs.RunLifeCycleState.QUEUED
    assert w.jobs.get_run(legacy_second).state.life_cycle_state == jobs.RunLifeCycleState.SKIPPED
    assert wait(w, second).state.result_state == jobs.RunResultState.SUCCESS
    assert wait(w, second).start_time >= wait(w, first).end_time
    wait(w, legacy_first)
    # A reset through 2.2 without `queue` turns queueing on too.
    w.jobs.reset(legacy, jobs.JobSettings.from_dict(
        {"name": "legacy", "tasks": [task("old", script, out)], "job_clusters": [SHARED]}))
    assert w.jobs.get(legacy).settings.queue.enabled is True


SLEEP = """
    import os, sys, time
    open(os.path.join(sys.argv[1], sys.argv[2] + ".pid"), "w").write(str(os.getpid()))
    time.sleep(60)
"""


def test_cancel_kills_running_tasks_and_cancels_the_tasks_still_waiting(ws, w, out):
    sleeper = put_script(w, "/scripts/sleep.py", SLEEP)
    job_id = create_job(w, [task("a", sleeper, out), task("b", sleeper, out, depends_on=["a"]),
                            task("d", sleeper, out)])
    run_id = w.jobs.run_now(job_id).run_id
    pids = [int(wait_for_file(out / f"{key}.pid")) for key in ("a", "d")]

    w.jobs.cancel_run(run_id)
    run = wait(w, run_id)

    assert run.state.result_state == jobs.RunResultState.CANCELED
    assert results(run) == {"a": "CANCELED", "b": "CANCELED", "d": "CANCELED"}
    assert not (out / "b.pid").exists()
    assert not any(alive(pid) for pid in pids)


def test_cancel_all_cancels_every_active_run_of_the_job(ws, w, out):
    sleeper = put_script(w, "/scripts/sleep.py", SLEEP)
    job_id = create_job(w, [task("a", sleeper, out)], max_concurrent_runs=2)
    runs = [w.jobs.run_now(job_id).run_id for _ in range(2)]

    w.jobs.cancel_all_runs(job_id=job_id)

    assert [wait(w, r).state.result_state for r in runs] == [jobs.RunResultState.CANCELED] * 2


def test_next_run_fails_applies_to_run_now(ws, w, script, out):
    job_id = create_job(w, diamond(script, out))
    ws.faults.next_run_fails("Cluster terminated: driver unreachable")

    run = wait(w, w.jobs.run_now(job_id).run_id)

    assert run.state.result_state == jobs.RunResultState.FAILED
    assert run.state.state_message == "Cluster terminated: driver unreachable"
    assert list(out.iterdir()) == []

