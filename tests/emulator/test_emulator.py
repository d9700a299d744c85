"""The Databricks emulator as the real databricks-sdk and dagster-databricks see it.

Each test reads as an example: start a `DatabricksEmulator`, point a `WorkspaceClient` at
`ws.host`, and use the SDK as against a workspace. Tasks are tiny Python scripts (no Spark).
"""

import io
import json
import os
import sys
import textwrap
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.core import Config
from databricks.sdk.errors import (
    AlreadyExists,
    BadRequest,
    NotFound,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    Unauthenticated,
)
from databricks.sdk.service import jobs

from databricks_emulator import DatabricksEmulator

TOKEN = "dapi-emulator-test-token"
SUBMIT = "/api/2.2/jobs/runs/submit"
GET_RUN = "/api/2.2/jobs/runs/get"
NEW_CLUSTER = {"spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge", "num_workers": 1}


@pytest.fixture
def ws(tmp_path):
    # PATH only: task processes get exactly this environment plus their cluster's env vars.
    with DatabricksEmulator(root=tmp_path / "ws", token=TOKEN, python=sys.executable,
                            env={"PATH": os.environ.get("PATH", "")}) as ws:
        yield ws


def client(host: str, token: str = TOKEN) -> WorkspaceClient:
    # Short timeouts: a broken emulator should fail a test, not stall it for the SDK's 300 s.
    return WorkspaceClient(config=Config(host=host, token=token, http_timeout_seconds=10,
                                         retry_timeout_seconds=30))


@pytest.fixture
def w(ws, monkeypatch) -> WorkspaceClient:
    for name in list(os.environ):
        if name.startswith("DATABRICKS_"):
            monkeypatch.delenv(name)  # an explicit host plus ambient credentials is an error
    return client(ws.host)


def put_script(w: WorkspaceClient, path: str, source: str) -> str:
    w.dbfs.upload(path, io.BytesIO(textwrap.dedent(source).encode()), overwrite=True)
    return f"dbfs:{path}"


def python_task(python_file: str, parameters=(), env=None, **fields) -> dict:
    cluster = {**NEW_CLUSTER, "spark_env_vars": dict(env or {})}
    return {"task_key": "main", "new_cluster": cluster,
            "spark_python_task": {"python_file": python_file, "parameters": list(parameters)},
            **fields}


def submit(w: WorkspaceClient, *tasks: dict, **kwargs) -> int:
    waiter = w.jobs.submit(tasks=[jobs.SubmitTask.from_dict(t) for t in tasks], **kwargs)
    return waiter.run_id


def wait(w: WorkspaceClient, run_id: int, timeout: float = 30) -> jobs.Run:
    """Poll runs/get like a Pipes client does, until the run is over."""
    deadline = time.monotonic() + timeout
    while True:
        run = w.jobs.get_run(run_id)
        if run.state.life_cycle_state in (jobs.RunLifeCycleState.TERMINATED,
                                          jobs.RunLifeCycleState.INTERNAL_ERROR,
                                          jobs.RunLifeCycleState.SKIPPED):
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run.state.life_cycle_state}"
        time.sleep(0.05)


def wait_for_file(path: Path, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text()


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


# -- running tasks ---------------------------------------------------------------------------

WRITE_ARGS_AND_ENV = """
    import json, os, sys
    out, *args = sys.argv[1:]
    with open(out, "w") as f:
        json.dump({"args": args, "greeting": os.environ.get("GREETING"),
                   "runtime": os.environ.get("DATABRICKS_RUNTIME_VERSION")}, f)
    print("task says hello")
"""


def test_python_task_gets_its_parameters_and_spark_env_vars(ws, w, tmp_path):
    script = put_script(w, "/scripts/write.py", WRITE_ARGS_AND_ENV)
    out = tmp_path / "out.json"
    run_id = submit(w, python_task(script, [str(out), "--date", "2024-01-01"], {"GREETING": "hi"}))

    run = wait(w, run_id)

    assert run.state.result_state == jobs.RunResultState.SUCCESS
    assert json.loads(out.read_text()) == {
        "args": ["--date", "2024-01-01"], "greeting": "hi", "runtime": "15.4.x-scala2.12"}
    assert run.run_page_url.startswith(ws.host)
    assert run.tasks[0].task_key == "main" and run.tasks[0].run_id != run_id
    assert [state for state, _ in ws.runs[run_id].history] == [
        "PENDING", "RUNNING", "TERMINATING", "TERMINATED"]
    assert "task says hello" in ws.runs[run_id].task.stdout()
    assert "task says hello" in w.jobs.get_run_output(run.tasks[0].run_id).logs


LOG = "import sys\nprint('loading orders', file=sys.stderr)\n"


@pytest.mark.parametrize("source, error", [
    (LOG + "raise ValueError('bad input 42')", "ValueError: bad input 42"),
    # Output after the traceback (a Pipes writer closing, a logger flushing) is not the error.
    (LOG + "import atexit\natexit.register(lambda: print('closing pipes', file=sys.stderr))\n"
           "raise ValueError('bad input 42')", "ValueError: bad input 42"),
    (LOG + "sys.exit(3)", "loading orders"),  # no exception: the last line of stderr
    ("import sys\nsys.exit(3)", "Task main failed with exit code 3"),  # no stderr at all
])
def test_a_failing_script_ends_failed_with_its_error_in_the_run_output_not_the_state(
        ws, w, source, error):
    script = put_script(w, "/scripts/fail.py", source + "\n")

    run = wait(w, submit(w, python_task(script)))

    assert run.state.life_cycle_state == jobs.RunLifeCycleState.TERMINATED
    assert run.state.result_state == jobs.RunResultState.FAILED
    # Like Databricks, runs/get says only that the workload failed, for the run and the task.
    assert run.state.state_message == "Workload failed, see run output for details"
    assert run.tasks[0].state.state_message == "Workload failed, see run output for details"
    output = w.jobs.get_run_output(run.tasks[0].run_id)
    assert output.error == error
    assert (output.error_trace or "") == ws.runs[run.run_id].task.stderr()  # all of stderr


@pytest.mark.parametrize("python_file", ["dbfs:/scripts/missing.py", "/Workspace/Users/me/job.py"])
def test_a_task_that_cannot_start_is_an_internal_error(w, python_file):
    run = wait(w, submit(w, python_task(python_file)))

    assert run.state.life_cycle_state == jobs.RunLifeCycleState.INTERNAL_ERROR
    assert python_file.split(":")[-1] in run.state.state_message


def test_a_task_whose_interpreter_cannot_start_is_an_internal_error(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    with DatabricksEmulator(root=tmp_path / "ws", token=TOKEN, python="/no/such/python") as ws:
        w = client(ws.host)
        run = wait(w, submit(w, python_task(put_script(w, "/scripts/ok.py", "print(1)\n"))))
    assert run.state.life_cycle_state == jobs.RunLifeCycleState.INTERNAL_ERROR
    assert "/no/such/python" in run.state.state_message


SLEEP_WITH_CHILD = """
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    open(sys.argv[1], "w").write(f"{__import__('os').getpid()} {child.pid}")
    time.sleep(60)
"""


def test_cancel_kills_the_task_and_everything_it_started(ws, w, tmp_path):
    script = put_script(w, "/scripts/sleep.py", SLEEP_WITH_CHILD)
    pids_file = tmp_path / "pids"
    run_id = submit(w, python_task(script, [str(pids_file)]))
    pids = [int(p) for p in wait_for_file(pids_file).split()]

    w.jobs.cancel_run(run_id)
    run = wait(w, run_id)

    assert run.state.life_cycle_state == jobs.RunLifeCycleState.TERMINATED
    assert run.state.result_state == jobs.RunResultState.CANCELED
    assert not any(alive(pid) for pid in pids)


def test_a_run_past_its_timeout_is_killed_and_timedout(ws, w, tmp_path):
    script = put_script(w, "/scripts/sleep.py", SLEEP_WITH_CHILD)
    pids_file = tmp_path / "pids"

    run = wait(w, submit(w, python_task(script, [str(pids_file)]), timeout_seconds=1))

    assert run.state.result_state == jobs.RunResultState.TIMEDOUT
    assert not any(alive(int(pid)) for pid in pids_file.read_text().split())


def test_shutdown_kills_running_tasks(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    pids_file = tmp_path / "pids"
    with DatabricksEmulator(root=tmp_path / "ws", token=TOKEN) as ws:
        w = client(ws.host)
        script = put_script(w, "/scripts/sleep.py", SLEEP_WITH_CHILD)
        submit(w, python_task(script, [str(pids_file)]))
        pids = [int(p) for p in wait_for_file(pids_file).split()]
    assert not any(alive(pid) for pid in pids)


def test_dependent_tasks_run_in_order_and_a_failure_stops_dependents(w, tmp_path):
    log = tmp_path / "order.txt"
    script = put_script(w, "/scripts/append.py", """
        import sys
        open(sys.argv[1], "a").write(sys.argv[2] + "\\n")
        sys.exit(int(sys.argv[3]))
    """)
    tasks = [
        {**python_task(script, [str(log), "second", "1"]), "task_key": "second",
         "depends_on": [{"task_key": "first"}]},
        {**python_task(script, [str(log), "first", "0"]), "task_key": "first"},
        {**python_task(script, [str(log), "third", "0"]), "task_key": "third",
         "depends_on": [{"task_key": "second"}]},
    ]

    run = wait(w, submit(w, *tasks))

    assert log.read_text().split() == ["first", "second"]
    assert run.state.result_state == jobs.RunResultState.FAILED
    results = {t.task_key: t.state.result_state.value for t in run.tasks}
    assert results == {"first": "SUCCESS", "second": "FAILED", "third": "UPSTREAM_FAILED"}


def test_submit_rejects_what_it_cannot_run(w):
    with pytest.raises(BadRequest, match="exactly one of spark_python_task"):
        submit(w, {"task_key": "nb", "new_cluster": NEW_CLUSTER,
                   "notebook_task": {"notebook_path": "/Users/me/nb"}})
    with pytest.raises(BadRequest, match="cycle"):
        submit(w, {**python_task("dbfs:/x.py"), "task_key": "a", "depends_on": [{"task_key": "b"}]},
               {**python_task("dbfs:/x.py"), "task_key": "b", "depends_on": [{"task_key": "a"}]})
    with pytest.raises(BadRequest, match="Shared job cluster"):
        w.api_client.do("POST", SUBMIT, body={
            "tasks": [{**python_task("dbfs:/x.py"), "job_cluster_key": "shared"}],
            "job_clusters": [{"job_cluster_key": "shared", "new_cluster": NEW_CLUSTER}]})


# -- faults ----------------------------------------------------------------------------------

def test_429_and_503_on_submit_and_get_are_retried_by_the_sdk_without_a_second_run(ws, w):
    script = put_script(w, "/scripts/ok.py", "print('ok')\n")
    for path, method in ((SUBMIT, "POST"), (GET_RUN, "GET")):
        ws.faults.http_error(method, path, status=429)
        ws.faults.http_error(method, path, status=503)

    run = wait(w, submit(w, python_task(script)))

    assert run.state.result_state == jobs.RunResultState.SUCCESS
    assert len(ws.requests_to("POST", SUBMIT)) == 3  # two refused attempts, one accepted
    assert len(ws.runs) == 1


def test_a_repeated_idempotency_token_returns_the_same_run(ws, w):
    script = put_script(w, "/scripts/ok.py", "print('ok')\n")
    first = submit(w, python_task(script), idempotency_token="table-orders-attempt-1")
    second = submit(w, python_task(script), idempotency_token="table-orders-attempt-1")

    assert first == second and len(ws.runs) == 1
    wait(w, first)


def test_next_run_fails_without_running(ws, w, tmp_path):
    script = put_script(w, "/scripts/write.py", WRITE_ARGS_AND_ENV)
    ws.faults.next_run_fails(message="Cluster terminated: spot instance lost")

    run = wait(w, submit(w, python_task(script, [str(tmp_path / "out.json")])))

    assert run.state.result_state == jobs.RunResultState.FAILED
    assert run.state.state_message == "Cluster terminated: spot instance lost"
    assert not (tmp_path / "out.json").exists()
    # The fault is used up: the next run executes.
    assert wait(w, submit(w, python_task(script, [str(tmp_path / "out.json")]))).state.result_state \
        == jobs.RunResultState.SUCCESS


def test_next_run_hangs_until_cancelled_while_the_server_stays_responsive(ws, w):
    ws.faults.next_run_hangs()
    run_id = submit(w, python_task("dbfs:/never/read.py"))
    time.sleep(0.5)

    assert w.jobs.get_run(run_id).state.life_cycle_state == jobs.RunLifeCycleState.RUNNING
    for _ in range(20):
        w.dbfs.mkdirs("/tmp/still-answering")
    w.jobs.cancel_run(run_id)

    assert wait(w, run_id).state.result_state == jobs.RunResultState.CANCELED


# -- DBFS and volumes ------------------------------------------------------------------------

def test_dbfs_read_without_length_returns_at_most_half_a_megabyte(ws, w):
    data = os.urandom(600_000)
    w.dbfs.upload("/data/blob.bin", io.BytesIO(data))  # create / add-block / close

    first = w.dbfs.read("/data/blob.bin")
    rest = w.dbfs.read("/data/blob.bin", offset=first.bytes_read)

    assert first.bytes_read == 524288
    assert rest.bytes_read == len(data) - 524288
    assert w.dbfs.download("/data/blob.bin").read() == data
    assert (ws.dbfs_root / "data" / "blob.bin").read_bytes() == data


def test_dbfs_put_status_list_and_delete(ws, w):
    w.dbfs.mkdirs("/tmp/ctx")
    w.dbfs.put("/tmp/ctx/context.json", contents="e30=", overwrite=True)  # base64 of "{}"

    assert w.dbfs.get_status("/tmp/ctx/context.json").file_size == 2
    assert [f.path for f in w.dbfs.list("/tmp/ctx")] == ["/tmp/ctx/context.json"]
    with pytest.raises(ResourceAlreadyExists):
        w.dbfs.put("/tmp/ctx/context.json", contents="e30=")
    w.dbfs.delete("/tmp/ctx", recursive=True)
    with pytest.raises(ResourceDoesNotExist):
        w.dbfs.get_status("/tmp/ctx")
    with pytest.raises(ResourceDoesNotExist):
        w.dbfs.read("/tmp/ctx/1.json")  # what a Pipes reader sees before a chunk is written


def test_volume_files_round_trip(ws, w):
    folder = "/Volumes/main/default/landing/batch 1"
    w.files.create_directory(folder)
    w.files.upload(f"{folder}/part-0.csv", io.BytesIO(b"a,b\n1,2\n"))

    assert w.files.get_metadata(f"{folder}/part-0.csv").content_length == 8
    assert w.files.download(f"{folder}/part-0.csv").contents.read() == b"a,b\n1,2\n"
    assert [e.name for e in w.files.list_directory_contents(folder)] == ["part-0.csv"]
    assert (ws.volumes_root / "main/default/landing/batch 1/part-0.csv").exists()
    with pytest.raises(AlreadyExists):
        w.files.upload(f"{folder}/part-0.csv", io.BytesIO(b"x"), overwrite=False)
    w.files.delete(f"{folder}/part-0.csv")
    w.files.delete_directory(folder)
    with pytest.raises(NotFound):
        w.files.get_directory_metadata(folder)


def build_wheel(path: Path) -> None:
    """A minimal pure-python wheel: package `emuwheel` with a console-script entry point."""
    dist = "emuwheel-0.1.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("emuwheel/__init__.py", textwrap.dedent("""
            import sys
            GREETING = "from the wheel"
            def hello():
                open(sys.argv[1], "w").write(GREETING + " " + " ".join(sys.argv[2:]))
        """))
        wheel.writestr(f"{dist}/METADATA", "Metadata-Version: 2.1\nName: emuwheel\nVersion: 0.1\n")
        wheel.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{dist}/entry_points.txt", "[console_scripts]\nemu-hello = emuwheel:hello\n")
        wheel.writestr(f"{dist}/RECORD", "")


def test_wheel_libraries_are_importable_by_python_and_wheel_tasks(ws, w, tmp_path):
    build_wheel(tmp_path / "emuwheel-0.1-py3-none-any.whl")
    wheel = "/Volumes/main/default/libs/emuwheel-0.1-py3-none-any.whl"
    w.files.upload(wheel, io.BytesIO((tmp_path / "emuwheel-0.1-py3-none-any.whl").read_bytes()))
    script = put_script(w, "/scripts/use_wheel.py", """
        import sys, emuwheel
        open(sys.argv[1], "w").write(emuwheel.GREETING)
    """)
    script_task = {**python_task(script, [str(tmp_path / "script.txt")]), "task_key": "script",
                   "libraries": [{"whl": wheel}]}
    wheel_task = {"task_key": "wheel", "environment_key": "serverless",
                  "depends_on": [{"task_key": "script"}],
                  "python_wheel_task": {"package_name": "emuwheel", "entry_point": "emu-hello",
                                        "parameters": [str(tmp_path / "wheel.txt"), "x"]}}
    environments = [jobs.JobEnvironment.from_dict(
        {"environment_key": "serverless", "spec": {"client": "2", "dependencies": [wheel]}})]

    run = wait(w, submit(w, script_task, wheel_task, environments=environments))

    assert run.state.result_state == jobs.RunResultState.SUCCESS, run.state.state_message
    assert (tmp_path / "script.txt").read_text() == "from the wheel"
    assert (tmp_path / "wheel.txt").read_text() == "from the wheel x"


# -- auth, clusters, unknown endpoints -------------------------------------------------------

def test_a_wrong_or_missing_token_gets_401_and_the_token_is_never_recorded(ws, w, caplog):
    caplog.set_level("DEBUG", logger="databricks_emulator")
    w.dbfs.mkdirs("/tmp/ok")
    with pytest.raises(Unauthenticated):
        client(ws.host, token="dapi-wrong").dbfs.get_status("/tmp/ok")
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{ws.host}/api/2.0/dbfs/get-status?path=/tmp/ok")

    assert missing.value.code == 401
    assert json.loads(missing.value.read())["error_code"] == "UNAUTHENTICATED"
    assert ws.requests_containing(TOKEN) == []
    assert TOKEN not in caplog.text and caplog.text  # logged, but never the token


def test_existing_cluster_runs_tasks_and_answers_clusters_get(ws, w, tmp_path):
    ws.add_cluster("0101-123456-emu", spark_version="14.3.x-scala2.12",
                   spark_env_vars={"GREETING": "from the cluster"})

    assert w.clusters.get("0101-123456-emu").state.value == "RUNNING"
    with pytest.raises(NotFound):
        w.clusters.get("0101-000000-nope")

    script = put_script(w, "/scripts/write.py", WRITE_ARGS_AND_ENV)
    task = {"task_key": "main", "existing_cluster_id": "0101-123456-emu",
            "spark_python_task": {"python_file": script, "parameters": [str(tmp_path / "o.json")]}}
    assert wait(w, submit(w, task)).state.result_state == jobs.RunResultState.SUCCESS
    written = json.loads((tmp_path / "o.json").read_text())
    assert written["runtime"] == "14.3.x-scala2.12" and written["greeting"] == "from the cluster"


def test_unknown_endpoints_and_runs_are_not_found(w):
    with pytest.raises(NotFound) as endpoint:
        w.api_client.do("GET", "/api/2.0/workspace/list")
    assert endpoint.value.error_code == "ENDPOINT_NOT_FOUND"
    with pytest.raises(ResourceDoesNotExist):
        w.jobs.get_run(999999)


# -- dagster-databricks end to end -----------------------------------------------------------

# The task side of Pipes as it runs on a cluster, except for the FUSE root: dagster-pipes'
# DBFS loader and writer hard-code "/dbfs", and the writer reads cluster-log settings from a
# Databricks SparkSession. These subclasses take the root from an env var instead and report
# no log location; message chunks are written exactly as PipesDbfsMessageWriter writes them.
PIPES_TASK = """
    import json, os, sys
    from contextlib import contextmanager
    from dagster_pipes import (PipesBufferedFilesystemMessageWriterChannel, PipesCliArgsParamsLoader,
                               PipesDbfsContextLoader, PipesDbfsMessageWriter,
                               PipesEnvVarParamsLoader, open_dagster_pipes)

    FUSE_ROOT = os.environ["EMULATOR_DBFS_FUSE_ROOT"]

    def mounted(path):
        return os.path.join(FUSE_ROOT, path.lstrip("/"))

    class ContextLoader(PipesDbfsContextLoader):
        @contextmanager
        def load_context(self, params):
            with open(mounted(params["path"]), encoding="utf-8") as f:
                yield json.load(f)

    class MessageWriter(PipesDbfsMessageWriter):
        def make_channel(self, params):
            return PipesBufferedFilesystemMessageWriterChannel(
                path=mounted(params["path"]), interval=self.interval)

        def get_opened_extras(self):
            return {}

    # On an existing cluster the bootstrap comes as CLI arguments, on a new one as env vars.
    on_existing = "--dagster-pipes-context" in sys.argv
    params_loader = PipesCliArgsParamsLoader() if on_existing else PipesEnvVarParamsLoader()
    with open_dagster_pipes(params_loader=params_loader, context_loader=ContextLoader(),
                            message_writer=MessageWriter(interval=1)) as pipes:
        pipes.log.info(f"running {pipes.asset_key} on {os.environ['DATABRICKS_RUNTIME_VERSION']}")
        pipes.report_asset_materialization(
            metadata={"row_count": 42, "partition_hint": pipes.get_extra("partition_hint")})
"""


@pytest.mark.filterwarnings("ignore::dagster.PreviewWarning")  # inside dagster-databricks' own run()
@pytest.mark.parametrize("compute", ["new_cluster", "existing_cluster"])
def test_dagster_databricks_pipes_client_materializes_an_asset_through_the_emulator(ws, w, compute):
    import dagster as dg
    from dagster_databricks import PipesDatabricksClient

    script = put_script(w, "/scripts/pipes_task.py", PIPES_TASK)
    fuse_root = {"EMULATOR_DBFS_FUSE_ROOT": str(ws.dbfs_root)}
    if compute == "new_cluster":
        cluster = {"new_cluster": {**NEW_CLUSTER, "spark_env_vars": fuse_root}}
        runtime = NEW_CLUSTER["spark_version"]
    else:
        runtime = "14.3.x-scala2.12"
        ws.add_cluster("0101-pipes", spark_version=runtime, spark_env_vars=fuse_root)
        cluster = {"existing_cluster_id": "0101-pipes"}

    @dg.asset
    def orders(context: dg.AssetExecutionContext, databricks: PipesDatabricksClient):
        task = jobs.SubmitTask.from_dict({
            "task_key": "orders", **cluster, "spark_python_task": {"python_file": script}})
        return databricks.run(task=task, context=context,
                              extras={"partition_hint": "2024-01"}).get_materialize_result()

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [orders], instance=instance,
        resources={"databricks": PipesDatabricksClient(client=w, poll_interval_seconds=0.2)})

    assert result.success
    (materialization,) = result.asset_materializations_for_node("orders")
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    (run_id,) = ws.runs
    assert metadata["row_count"] == 42
    assert metadata["partition_hint"] == "2024-01"  # extras travelled in the injected context
    assert metadata["Databricks Job Run ID"] == str(run_id)
    assert metadata["Databricks Job Run URL"] == ws.runs[run_id].run_page_url
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert f"running orders on {runtime}" in messages  # a Pipes log message from the task
    # The Pipes bootstrap: spark_env_vars on a new cluster, task parameters on an existing one
    # (after a clusters/get for its log settings).
    spec = ws.runs[run_id].task.spec
    if compute == "new_cluster":
        assert {"DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES"} <= spec["new_cluster"]["spark_env_vars"].keys()
    else:
        assert spec["spark_python_task"]["parameters"][::2] == ["--dagster-pipes-context", "--dagster-pipes-messages"]
        assert len(ws.requests_to("GET", "/api/2.1/clusters/get")) == 1
    # Both DBFS temp folders (context, messages) were removed.
    assert list((ws.dbfs_root / "tmp").iterdir()) == []
    assert ws.requests_containing(TOKEN) == []
