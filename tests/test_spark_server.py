"""The machine's warm Spark (resources/spark_server.py), with real processes and no mocks.

Every server here has a state directory and a port of its own, so the project's shared server is
never touched. A start costs 5-30 s of CPU on 2 cores, so most tests share one server (the
module's `server`) and each waits with a bound well above what was measured.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from resources.paths import PROJECT_DIR
from resources.spark_server import LocalSparkServer, SparkServerError

# Measured on 2 cores: start to healthy 5-12 s (30 s on a loaded machine), a client's Delta
# write, append and reads with a Python UDF 15-20 s, an idle stop 1-3 s after the idle time.
CLIENT_TIMEOUT = 300
IDLE_STOP_BOUND = 90


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def gone(pid: int) -> bool:
    """Whether the process has exited (a zombie waiting for its parent to read its exit counts)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def starts(server: LocalSparkServer) -> int:
    """How many times a server was launched in this state directory (its log keeps them all)."""
    log = os.path.join(server.state_dir, "server.log")
    return open(log).read().count("started JVM pid") if os.path.exists(log) else 0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = LocalSparkServer(state_dir=str(tmp_path_factory.mktemp("spark")), port=free_port())
    yield server
    server.stop()


# A job's side: any process with pyspark's Connect client and the server's URL.
CLIENT = """
import json, sys, warnings
warnings.simplefilter("ignore", FutureWarning)  # pyspark's notice about pandas 3
from pyspark.sql import SparkSession, functions as F

url, path = sys.argv[1:]
spark = SparkSession.builder.remote(url).getOrCreate()
spark.range(10).write.format("delta").mode("overwrite").save(path)
spark.range(10, 15).write.format("delta").mode("append").save(path)
spark.range(3).write.format("delta").mode("overwrite").saveAsTable("default.by_name")
double = F.udf(lambda x: 2 * x, "long")  # runs in a Python worker of the server
table = spark.read.format("delta").load(path)
print(json.dumps({
    "rows": table.count(),
    "rows_at_version_0": spark.read.format("delta").option("versionAsOf", 0).load(path).count(),
    "doubled_sum": table.select(F.sum(double("id"))).first()[0],
    "time_zone": spark.conf.get("spark.sql.session.timeZone"),
}))
"""

# Another process asking for the server, as a job or a second `dagster dev` would.
STARTER = """
import sys
from resources.spark_server import LocalSparkServer
print(LocalSparkServer(state_dir=sys.argv[1], port=int(sys.argv[2])).ensure_running())
"""


def test_two_processes_asking_at_once_start_one_server_that_outlives_them(server):
    server.stop()  # whatever an earlier test left: this one watches a start
    launched = starts(server)
    askers = [
        subprocess.Popen([sys.executable, "-c", STARTER, server.state_dir, str(server.port)],
                         cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [asker.communicate(timeout=300) for asker in askers]

    assert [asker.returncode for asker in askers] == [0, 0], results
    assert [out.strip() for out, _ in results] == [server.url, server.url]
    assert starts(server) == launched + 1
    assert server.is_healthy()  # both askers have exited; the server runs on


def test_a_client_writes_and_reads_delta_tables_through_the_url(server, tmp_path):
    with server.lease() as url:
        assert server.status().leases == [os.getpid()]
        client = subprocess.run([sys.executable, "-c", CLIENT, url, str(tmp_path / "numbers")],
                                capture_output=True, text=True, timeout=CLIENT_TIMEOUT)
    assert client.returncode == 0, client.stderr[-3000:]
    assert json.loads(client.stdout.splitlines()[-1]) == {
        "rows": 15, "rows_at_version_0": 10, "doubled_sum": 210, "time_zone": "UTC",
    }
    assert os.path.isdir(os.path.join(server.state_dir, "catalog", "by_name", "_delta_log"))
    assert server.status().leases == []


def test_a_killed_jvm_is_started_again_by_the_next_caller(server):
    server.ensure_running()
    before = server.status()
    os.kill(before.jvm_pid, signal.SIGKILL)

    assert server.ensure_running() == server.url
    after = server.status()
    assert after.healthy and after.jvm_pid != before.jvm_pid
    assert gone(before.jvm_pid) and gone(before.pid)  # the old supervisor saw its JVM die


def test_stop_stops_the_supervisor_and_the_jvm(server):
    server.ensure_running()
    running = server.status()

    assert server.stop() is True
    assert gone(running.pid) and gone(running.jvm_pid)
    assert server.status() is None and not server.is_healthy()
    assert not os.path.exists(os.path.join(server.state_dir, "server.json"))
    assert server.stop() is False  # nothing left to stop


def test_other_settings_restart_the_server_only_when_no_lease_holds_it(server):
    wider = LocalSparkServer(state_dir=server.state_dir, port=server.port, shuffle_partitions=8)
    with server.lease():
        running = server.status()
        with pytest.raises(SparkServerError, match=r"shuffle_partitions 4 -> 8.*leases held by pids"):
            wider.ensure_running()
        assert server.status().jvm_pid == running.jvm_pid  # untouched while in use

    assert wider.ensure_running() == server.url
    restarted = wider.status()
    assert restarted.settings["shuffle_partitions"] == 8 and restarted.jvm_pid != running.jvm_pid
    assert gone(running.jvm_pid)


def test_a_server_stops_itself_when_idle_but_not_while_leased(tmp_path):
    server = LocalSparkServer(state_dir=str(tmp_path), port=free_port(), idle_stop_minutes=0.05)
    idle_seconds = server.idle_stop_minutes * 60
    try:
        with server.lease():
            running = server.status()
            time.sleep(3 * idle_seconds)
            assert server.is_healthy()  # in use: kept

        wait_for(lambda: server.status() is None, IDLE_STOP_BOUND, "the idle server to stop itself")
        # The supervisor removes its state before it exits, so its exit may follow a moment later.
        wait_for(lambda: gone(running.pid) and gone(running.jvm_pid), 30, "the server's processes to exit")
        assert "stopping the idle server" in (tmp_path / "server.log").read_text()
    finally:
        server.stop()


def test_a_port_taken_by_another_process_is_a_clear_error(tmp_path):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        server = LocalSparkServer(state_dir=str(tmp_path), port=port)
        with pytest.raises(SparkServerError) as error:
            server.ensure_running()
    assert (
        f"127.0.0.1:{port} is in use by another process (not this project's Spark server, "
        f"state in {tmp_path}): set PLATFORM_SPARK_PORT to a free port"
    ) in str(error.value)
    assert server.status() is None


def test_settings_come_from_the_environment_and_errors_name_them(tmp_path, monkeypatch):
    monkeypatch.setenv("PLATFORM_SPARK_DIR", str(tmp_path))
    monkeypatch.setenv("PLATFORM_SPARK_THREADS", "1")
    monkeypatch.setenv("PLATFORM_SPARK_IDLE_STOP_MINUTES", "30")
    monkeypatch.setenv("PLATFORM_SPARK_MEMORY", "lots")
    server = LocalSparkServer.from_env()
    assert (server.state_dir, server.threads, server.idle_stop_minutes, server.port) == (str(tmp_path), 1, 30.0, 15002)
    with pytest.raises(SparkServerError, match=r"memory \(PLATFORM_SPARK_MEMORY\) must be a JVM size"):
        server.ensure_running()

    monkeypatch.setenv("PLATFORM_SPARK_PORT", "next")
    with pytest.raises(ValueError, match="PLATFORM_SPARK_PORT='next'"):
        LocalSparkServer.from_env()


def test_the_orchestrator_side_loads_no_spark_and_the_supervisor_no_dagster():
    probe = """
import sys
import resources.spark_supervisor
supervisor_loads = sorted({m.split('.')[0] for m in sys.modules} & {'dagster', 'pyspark', 'delta', 'psutil', 'grpc'})
import resources.spark_server, scripts.spark_server
server_loads = sorted({m.split('.')[0] for m in sys.modules} & {'pyspark', 'delta'})
print(supervisor_loads, server_loads)
"""
    result = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] []"


def test_a_job_fails_at_once_when_its_server_stops_under_it():
    import dagster as dg

    from resources.job_processes import JobProcesses, SparkServerIdentity

    # Stand-ins with real pids: a server that dies, and a job that would otherwise wait on it
    # for Spark's client's ten minutes of retries.
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    identity = SparkServerIdentity(url="sc://127.0.0.1:1", pid=server.pid, log="/tmp/server.log")
    server.kill()
    server.wait()

    started = time.monotonic()
    with pytest.raises(dg.Failure, match=r"sc://127.0.0.1:1 .* stopped while the job ran; its log is /tmp/server.log"):
        JobProcesses._wait(job, identity)

    assert time.monotonic() - started < 30
    assert job.poll() is not None, "the job's process is ended, not left waiting"
