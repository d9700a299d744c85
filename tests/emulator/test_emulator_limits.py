"""What a locked-down Databricks workspace refuses, as the real databricks-sdk sees it through
the emulator: DBFS root access disabled, no PyPI (no network egress), and the workspace's
limits (tasks per job, execution contexts per cluster, concurrent task runs).
"""

import io
import os
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
from databricks.sdk.errors import BadRequest, PermissionDenied
from databricks.sdk.service import jobs

from databricks_emulator import DatabricksEmulator

from .test_emulator import NEW_CLUSTER, TOKEN, client, python_task, submit, wait, wait_for_file

NO_EGRESS = "cannot reach PyPI (the workspace has no network egress)"


@pytest.fixture
def start(tmp_path, monkeypatch):
    """start(**parameters) -> (emulator, WorkspaceClient), stopped after the test."""
    for name in list(os.environ):
        if name.startswith("DATABRICKS_"):
            monkeypatch.delenv(name)
    started = []

    def start(**parameters):
        ws = DatabricksEmulator(root=tmp_path / "ws", token=TOKEN, python=sys.executable,
                                env={"PATH": os.environ.get("PATH", "")}, pending_seconds=0.05,
                                **parameters).start()
        started.append(ws)
        return ws, client(ws.host)

    yield start
    for ws in started:
        ws.stop()


def upload(w, path: str, data: bytes) -> str:
    w.files.upload(path, io.BytesIO(data), overwrite=True)
    return path


def wait_until(condition, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.05)


def failed_at_setup(run: jobs.Run) -> str:
    assert run.state.life_cycle_state == jobs.RunLifeCycleState.INTERNAL_ERROR
    assert run.state.result_state == jobs.RunResultState.FAILED
    return run.state.state_message


# -- DBFS root disabled ----------------------------------------------------------------------

def test_with_dbfs_root_access_disabled_dbfs_is_denied_and_tasks_run_only_from_volumes(start):
    ws, w = start(dbfs_root_enabled=False)
    (ws.dbfs_root / "scripts").mkdir()
    (ws.dbfs_root / "scripts" / "job.py").write_text("print('from dbfs')\n")  # there, but denied

    with pytest.raises(PermissionDenied,
                       match="DBFS root access is disabled in this workspace: /tmp/pipes"):
        w.dbfs.mkdirs("/tmp/pipes")
    with pytest.raises(PermissionDenied, match="/scripts/job.py"):
        w.dbfs.upload("/scripts/job.py", io.BytesIO(b"print(1)"), overwrite=True)
    with pytest.raises(PermissionDenied):
        w.dbfs.read("/scripts/job.py")

    on_volume = upload(w, "/Volumes/main/default/code/ok.py", b"print('from a volume')\n")
    wheel_on_dbfs = {**python_task(on_volume),
                     "libraries": [{"whl": "dbfs:/libs/x-0.1-py3-none-any.whl"}]}
    for task, path in ((python_task("dbfs:/scripts/job.py"), "dbfs:/scripts/job.py"),
                       (python_task("/dbfs/scripts/job.py"), "/dbfs/scripts/job.py"),
                       (wheel_on_dbfs, "dbfs:/libs/x-0.1-py3-none-any.whl")):
        message = failed_at_setup(wait(w, submit(w, task)))
        assert f"DBFS root access is disabled in this workspace: {path}" in message

    run = wait(w, submit(w, python_task(on_volume)))
    assert run.state.result_state == jobs.RunResultState.SUCCESS
    assert "from a volume" in w.jobs.get_run_output(run.tasks[0].run_id).logs


# -- no PyPI ---------------------------------------------------------------------------------

@pytest.mark.parametrize("library, described", [
    ({"pypi": {"package": "dagster-pipes==1.9.0"}}, 'pypi {package: "dagster-pipes==1.9.0"}'),
    ({"requirements": "/Volumes/main/default/code/requirements.txt"},
     'requirements "/Volumes/main/default/code/requirements.txt"'),
])
def test_a_library_from_pypi_fails_the_task_at_setup(start, library, described):
    _, w = start()
    script = upload(w, "/Volumes/main/default/code/ok.py", b"print('never runs')\n")

    run = wait(w, submit(w, {**python_task(script), "libraries": [library]}))

    assert failed_at_setup(run) == (
        f"Library installation failed for library due to user error for {described}: {NO_EGRESS}")


def test_maven_libraries_and_serverless_dependencies_from_an_index_fail_too(start):
    _, w = start()
    script = upload(w, "/Volumes/main/default/code/ok.py", b"print('never runs')\n")
    maven = {**python_task(script),
             "libraries": [{"maven": {"coordinates": "io.delta:delta-sharing-spark_2.12:3.1.0"}}]}
    serverless = {"task_key": "main", "environment_key": "default",
                  "spark_python_task": {"python_file": script}}
    environments = [jobs.JobEnvironment.from_dict(
        {"environment_key": "default", "spec": {"client": "2", "dependencies": ["polars==1.0"]}})]

    assert "maven {coordinates: \"io.delta:delta-sharing-spark_2.12:3.1.0\"}: cannot reach Maven" \
        in failed_at_setup(wait(w, submit(w, maven)))
    assert failed_at_setup(wait(w, submit(w, serverless, environments=environments))).endswith(
        f'environment dependency "polars==1.0": {NO_EGRESS}')


def wheel(name: str, requires: list[str]) -> bytes:
    """A pure-python wheel of package `name` whose METADATA lists `requires`."""
    buffer = io.BytesIO()
    dist = f"{name}-0.1.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{name.replace('-', '_')}/__init__.py", "GREETING = 'hi'\n")
        archive.writestr(f"{dist}/METADATA", metadata)
        archive.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n")
    return buffer.getvalue()


RUNTIME_ONLY = ["requests>=2", "PyYAML", "typing_extensions", "Python-Dateutil (>=2.8)",
                "databricks-sdk>=0.30; python_version >= '3.8'",
                "pytest; extra == 'test'", "pywin32>=300; sys_platform == 'win32'",
                "tomli; python_version < '3.0'"]


def test_a_wheel_whose_requirements_are_not_on_the_runtime_fails_at_setup(start, tmp_path):
    _, w = start()
    script = upload(w, "/Volumes/main/default/code/use.py", textwrap.dedent("""
        import sys, jobswheel
        open(sys.argv[1], "w").write(jobswheel.GREETING)
    """).encode())
    libs = "/Volumes/main/default/libs"
    needs_pipes = upload(w, f"{libs}/jobswheel-0.1-py3-none-any.whl",
                         wheel("jobswheel", [*RUNTIME_ONLY, "dagster-pipes>=1.7"]))
    out = tmp_path / "out.txt"

    run = wait(w, submit(w, {**python_task(script, [str(out)]), "libraries": [{"whl": needs_pipes}]}))

    assert failed_at_setup(run) == (
        f'Library installation failed for library due to user error for whl "{needs_pipes}" '
        f'(requires dagster-pipes>=1.7): {NO_EGRESS}')
    # Shipped as a wheel of its own, the requirement is met without PyPI.
    pipes = upload(w, f"{libs}/dagster_pipes-1.9.0-py3-none-any.whl", wheel("dagster-pipes", []))
    run = wait(w, submit(w, {**python_task(script, [str(out)]),
                             "libraries": [{"whl": needs_pipes}, {"whl": pipes}]}))
    assert run.state.result_state == jobs.RunResultState.SUCCESS, run.state.state_message
    assert out.read_text() == "hi"


def test_with_pypi_reachable_index_libraries_are_left_to_the_local_python(start):
    _, w = start(pypi_reachable=True)
    script = upload(w, "/Volumes/main/default/code/ok.py", b"print('ran')\n")
    needs_pipes = upload(w, "/Volumes/main/default/libs/jobswheel-0.1-py3-none-any.whl",
                         wheel("jobswheel", ["dagster-pipes>=1.7"]))
    task = {**python_task(script), "libraries": [{"pypi": {"package": "dagster-pipes"}},
                                                 {"whl": needs_pipes}]}

    assert wait(w, submit(w, task)).state.result_state == jobs.RunResultState.SUCCESS


# -- limits ----------------------------------------------------------------------------------

def test_a_job_has_at_most_1000_tasks(start):
    ws, w = start()
    tasks = [{**python_task("/Volumes/main/default/code/ok.py"), "task_key": f"t{i}"}
             for i in range(1001)]

    with pytest.raises(BadRequest, match="at most 1000 tasks"):
        w.api_client.do("POST", "/api/2.2/jobs/create", body={"name": "big", "tasks": tasks})
    with pytest.raises(BadRequest, match="at most 1000 tasks"):
        w.api_client.do("POST", "/api/2.2/jobs/runs/submit", body={"tasks": tasks})
    job_id = w.api_client.do("POST", "/api/2.2/jobs/create",
                             body={"name": "big", "tasks": tasks[:1000]})["job_id"]
    with pytest.raises(BadRequest, match="at most 1000 tasks"):
        w.api_client.do("POST", "/api/2.2/jobs/reset",
                        body={"job_id": job_id, "new_settings": {"name": "big", "tasks": tasks}})
    # Older clients (API 2.1) cannot handle more than 100: Databricks' words.
    with pytest.raises(BadRequest, match="Resources with more than 100 tasks can only be handled "
                                         "by API 2.2 and above. Your resource has 101 tasks"):
        w.api_client.do("POST", "/api/2.1/jobs/create", body={"name": "big", "tasks": tasks[:101]})
    assert ws.runs == {}


HOLD = """
    import os, sys, time
    open(sys.argv[1], "w").write(str(os.getpid()))
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.02)
"""


def test_a_cluster_refuses_a_task_beyond_its_execution_contexts(start, tmp_path):
    ws, w = start(max_execution_contexts=1)
    ws.add_cluster("0101-all-purpose", spark_version="15.4.x-scala2.12")
    hold = upload(w, "/Volumes/main/default/code/hold.py", textwrap.dedent(HOLD).encode())
    ok = upload(w, "/Volumes/main/default/code/ok.py", b"print('ran')\n")
    release = tmp_path / "release"
    on_cluster = {"task_key": "main", "existing_cluster_id": "0101-all-purpose"}
    holding = submit(w, {**on_cluster, "spark_python_task": {
        "python_file": hold, "parameters": [str(tmp_path / "pid"), str(release)]}})
    wait_for_file(tmp_path / "pid")

    refused = wait(w, submit(w, {**on_cluster, "spark_python_task": {"python_file": ok}}))
    # Other compute is not that cluster: a new cluster and serverless still run.
    serverless = {"task_key": "serverless", "environment_key": "default",
                  "spark_python_task": {"python_file": ok}}
    environments = [jobs.JobEnvironment.from_dict({"environment_key": "default", "spec": {"client": "2"}})]
    elsewhere = wait(w, submit(w, python_task(ok), serverless, environments=environments))
    release.touch()
    wait(w, holding)
    after = wait(w, submit(w, {**on_cluster, "spark_python_task": {"python_file": ok}}))

    assert refused.state.result_state == jobs.RunResultState.FAILED
    assert refused.tasks[0].state.state_message == refused.state.state_message == (
        "Too many execution contexts are open right now.(Limit set currently to 1)")
    assert elsewhere.state.result_state == jobs.RunResultState.SUCCESS
    assert after.state.result_state == jobs.RunResultState.SUCCESS  # the context was released


def test_tasks_of_one_job_cluster_share_its_execution_contexts(start, tmp_path):
    _, w = start(max_execution_contexts=2)
    hold = upload(w, "/Volumes/main/default/code/hold.py", textwrap.dedent(HOLD).encode())
    release = tmp_path / "release"
    tasks = [{"task_key": key, "job_cluster_key": "shared", "spark_python_task": {
        "python_file": hold, "parameters": [str(tmp_path / f"{key}.pid"), str(release)]}}
        for key in ("a", "b", "c")]
    job_id = w.jobs.create(name="wide", tasks=[jobs.Task.from_dict(t) for t in tasks], job_clusters=[
        jobs.JobCluster.from_dict({"job_cluster_key": "shared", "new_cluster": NEW_CLUSTER})]).job_id
    run_id = w.jobs.run_now(job_id).run_id

    # Two tasks hold their contexts until released; the third ends at once.
    wait_until(lambda: any(t.state.result_state for t in w.jobs.get_run(run_id).tasks))
    release.touch()
    run = wait(w, run_id)

    states = sorted(t.state.result_state.value for t in run.tasks)
    assert states == ["FAILED", "SUCCESS", "SUCCESS"]
    assert run.state.state_message == (
        "Too many execution contexts are open right now.(Limit set currently to 2)")


def test_workspace_task_runs_beyond_the_limit_wait_for_a_free_slot(start, tmp_path):
    _, w = start(max_concurrent_task_runs=1)
    record = upload(w, "/Volumes/main/default/code/record.py", textwrap.dedent("""
        import sys, time
        started = time.time()
        time.sleep(0.3)
        open(sys.argv[1], "w").write(f"{started} {time.time()}")
    """).encode())
    tasks = [{**python_task(record, [str(tmp_path / key)]), "task_key": key} for key in ("a", "b")]

    run = wait(w, submit(w, *tasks))

    assert run.state.result_state == jobs.RunResultState.SUCCESS
    (a_start, a_end), (b_start, b_end) = [
        map(float, (tmp_path / key).read_text().split()) for key in ("a", "b")]
    assert b_start >= a_end or a_start >= b_end  # one after the other, never both at once
