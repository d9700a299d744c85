"""The machine's warm Spark: one long-lived Spark Connect server with Delta.

It plays the part of a Databricks all-purpose cluster. Every local table job, test and
benchmark connects to it with `SparkSession.builder.remote(url)`, so a job's session is ready in
about a second instead of the 15-30 s of a JVM of its own.

    caller (job, test, `dagster dev`, CLI)
      |  Popen, a session of its own: it outlives the caller
    supervisor   python -m resources.spark_supervisor   (stdlib only, a few MB)
      |  child, dies with the supervisor
    JVM          spark-submit ... SparkConnectServer     (listens on 127.0.0.1:<port>)

Files under `state_dir` (default `.local/spark`):
    server.json          the running server: pids, port, start time, settings fingerprint
    launch.json          the command the supervisor runs (written at each start)
    lock                 flock: one process at a time starts or stops the server
    leases/<pid>-<id>    one per `lease()` block: the server is in use (for the idle stop)
    server.log           supervisor lines and the JVM's log (WARN, plus Spark Connect's start line)
    log4j2.properties    that log level
    catalog/             the session catalog's warehouse: tables written by name

This module manages processes only: it imports neither pyspark nor delta (the orchestrator must
not load Spark). Catalog tables live in Spark's in-memory session catalog: their files stay in
`catalog/`, but the names are forgotten when the server restarts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib.metadata import version
from pathlib import Path

import dagster as dg
import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

from resources.local_spark import delta_jars, shared_spark_conf
from resources.paths import LOCAL_DIR, PROJECT_DIR, local_dir
from resources.spark_supervisor import (
    LAUNCH_FILE, LEASES_DIR, LOCK_FILE, LOG_FILE, STATE_FILE, lease_pid, live_leases, pid_alive,
    read_json, write_json,
)

logger = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 180.0  # measured 5-30 s from launch to healthy on 2 cores
HEALTH_TIMEOUT_SECONDS = 3.0  # a healthy server answers in milliseconds
UNHEALTHY_GRACE_SECONDS = 20.0  # a running server that stops answering (a long GC) gets this long
STOP_TIMEOUT_SECONDS = 40.0  # the supervisor gives its JVM 20 s before SIGKILL
LOG_ROTATE_BYTES = 20_000_000
STOP_COMMAND = "python -m scripts.spark_server stop"

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"

# A client that disappears (a killed job) leaves its operations running on the server; with
# these the server notices within ~10 s and interrupts them (measured: without them an orphaned
# write kept running about 2 minutes).
CLIENT_GONE_CONF = {
    "spark.connect.execute.reattachable.senderMaxStreamDuration": "5s",
    "spark.connect.execute.manager.detachedTimeout": "5s",
    "spark.connect.execute.manager.maintenanceInterval": "1s",
}

# At INFO Spark Connect logs every session access and operation; WARN keeps the log readable.
LOG4J2_PROPERTIES = """\
# Written by resources/spark_server.py at each server start.
rootLogger.level = warn
rootLogger.appenderRef.console.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yyyy-MM-dd HH:mm:ss} %p %c{1}: %m%n%ex
# Its start line: "Spark Connect server started at: 127.0.0.1:<port>".
logger.connect.name = org.apache.spark.sql.connect.service.SparkConnectServer
logger.connect.level = info
# Printed at every start on machines without Hadoop's native library: harmless.
logger.nativecode.name = org.apache.hadoop.util.NativeCodeLoader
logger.nativecode.level = error
"""

JVM_SIZE = re.compile(r"^\d+[kmgt]?$", re.IGNORECASE)


class SparkServerError(RuntimeError):
    """The warm Spark server could not be started, or not with the settings asked for."""


@dataclass(frozen=True)
class ServerStatus:
    """What a running server is, as its state file and its processes say."""

    pid: int  # the supervisor's; stopping it stops the server
    jvm_pid: int
    port: int
    url: str
    started_at: datetime
    settings: dict[str, object]  # threads, memory, shuffle partitions, idle stop, versions
    log: str
    leases: list[int]  # pids of the processes holding a live lease
    healthy: bool  # the JVM answers gRPC calls
    jvm_rss_bytes: int

    @property
    def uptime(self) -> timedelta:
        return datetime.now(timezone.utc) - self.started_at


@dataclass(frozen=True)
class _Files:
    """Where a server keeps its files (see the module docstring)."""

    dir: Path

    @property
    def state(self) -> Path:
        return self.dir / STATE_FILE

    @property
    def launch(self) -> Path:
        return self.dir / LAUNCH_FILE

    @property
    def lock(self) -> Path:
        return self.dir / LOCK_FILE

    @property
    def leases(self) -> Path:
        return self.dir / LEASES_DIR

    @property
    def log(self) -> Path:
        return self.dir / LOG_FILE

    @property
    def log4j(self) -> Path:
        return self.dir / "log4j2.properties"

    @property
    def catalog(self) -> Path:
        return self.dir / "catalog"


class LocalSparkServer(dg.ConfigurableResource):
    """The machine's warm Spark: one Spark Connect server with Delta, shared by every local job,
    test and benchmark, started on first use and kept running between runs.

    `ensure_running()` returns its URL for `SparkSession.builder.remote(url)`, starting it (or
    starting it again if it died, or if its settings or the installed versions changed) under a
    file lock, so concurrent callers start exactly one. A job holds `lease()` while it uses the
    server, which keeps an idle stop (`idle_stop_minutes` > 0) and a restart for changed
    settings from pulling it from under the job.
    """

    threads: int = 2  # local[N]: the server's task slots, shared by all its clients
    memory: str = "768m"  # the JVM's heap (--driver-memory); about 600 MB come on top of it
    shuffle_partitions: int = 4
    port: int = 15002
    idle_stop_minutes: float = 0  # 0: never stopped for idleness; a change applies at next start
    state_dir: str = str(LOCAL_DIR / "spark")  # logs, state file, leases, catalog warehouse

    @classmethod
    def from_env(cls) -> "LocalSparkServer":
        """PLATFORM_SPARK_THREADS, PLATFORM_SPARK_MEMORY, PLATFORM_SPARK_PORT,
        PLATFORM_SPARK_IDLE_STOP_MINUTES, PLATFORM_SPARK_DIR; the defaults above where unset."""
        settings = {}
        for field, env_var, parse in (
            ("threads", "PLATFORM_SPARK_THREADS", int),
            ("memory", "PLATFORM_SPARK_MEMORY", str),
            ("port", "PLATFORM_SPARK_PORT", int),
            ("idle_stop_minutes", "PLATFORM_SPARK_IDLE_STOP_MINUTES", float),
        ):
            raw = os.environ.get(env_var)
            if raw:
                try:
                    settings[field] = parse(raw)
                except ValueError:
                    raise ValueError(f"{env_var}={raw!r} is not a valid {field} ({parse.__name__})") from None
        return cls(state_dir=local_dir("PLATFORM_SPARK_DIR", "spark"), **settings)

    @property
    def url(self) -> str:
        """The Spark Connect URL clients use (whether or not the server runs)."""
        return f"sc://127.0.0.1:{self.port}"

    def ensure_running(self) -> str:
        """The server's URL, once it answers: starts it if it is not running, starts it again if
        it died or stopped answering, restarts it if its settings or versions changed and no
        lease holds it (raises if one does). Blocks until healthy (up to 180 s)."""
        files = self._files()
        with _exclusive(files.lock):
            return self._ensure_running(files)

    @contextlib.contextmanager
    def lease(self) -> Iterator[str]:
        """`ensure_running()`, and the server marked in use until the block ends: no idle stop
        and no restart for other settings meanwhile. Yields the URL."""
        files = self._files()
        with _exclusive(files.lock):
            url = self._ensure_running(files)
            lease = files.leases / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
            lease.write_text(" ".join(sys.argv))  # who holds it, for whoever reads the directory
        try:
            yield url
        finally:
            lease.unlink(missing_ok=True)

    def is_healthy(self) -> bool:
        """Whether the server runs: its supervisor and JVM alive, and the JVM answering gRPC."""
        files = self._files()
        state = read_json(files.state)
        return state is not None and _is_up(state, files) and grpc_answers(state["port"])

    def stop(self) -> bool:
        """Stop the server (SIGTERM to its supervisor, SIGKILL after a grace period) and wait for
        its processes to exit. True if a server was stopped; False if none was running."""
        files = self._files()
        if not files.dir.is_dir():
            return False
        with _exclusive(files.lock):
            state = read_json(files.state)
            if state is None:
                return False
            stopped = _terminate(state, files)
            files.state.unlink(missing_ok=True)
            return stopped

    def status(self) -> ServerStatus | None:
        """The running server, or None if there is none."""
        files = self._files()
        state = read_json(files.state)
        if state is None or not _is_up(state, files):
            return None
        identity = state["identity"]
        return ServerStatus(
            pid=state["supervisor_pid"],
            jvm_pid=state["jvm_pid"],
            port=state["port"],
            url=state["url"],
            started_at=datetime.fromtimestamp(state["started_at"], timezone.utc),
            settings={
                **{k: identity[k] for k in ("threads", "memory", "shuffle_partitions")},
                "idle_stop_minutes": state["idle_stop_minutes"],
                **{k: identity[k] for k in ("pyspark", "delta_spark")},
            },
            log=state["log"],
            leases=sorted({lease_pid(p) for p in live_leases(files.leases)}),
            healthy=grpc_answers(state["port"]),
            jvm_rss_bytes=_rss(state["jvm_pid"]),
        )

    # ---- under the lock -------------------------------------------------------------------

    def _files(self) -> _Files:
        return _Files(Path(self.state_dir).resolve())

    def _ensure_running(self, files: _Files) -> str:
        self._check_settings()
        launch = self._launch(files)
        _forget_dead_leases(files)
        state = read_json(files.state)
        if state is not None:
            if not _is_up(state, files):
                logger.warning("Spark server in %s has died: starting it again", files.dir)
            elif state["fingerprint"] != launch["fingerprint"]:
                self._refuse_restart_if_leased(state, launch, files)
                logger.warning("Spark server in %s has other settings (%s): restarting it", files.dir,
                               "; ".join(_differences(state["identity"], launch["identity"])))
            elif _wait_until_answering(state, files):
                _mark_used(files)
                return self.url
            else:
                logger.warning("Spark server in %s does not answer: starting it again", files.dir)
            _terminate(state, files)  # whatever is left of it
            files.state.unlink(missing_ok=True)
        self._refuse_taken_port(files)
        self._start(files, launch)
        _mark_used(files)
        return self.url

    def _check_settings(self) -> None:
        """Fail early, naming the setting, rather than with a JVM's stack trace."""
        problems = []
        if self.threads < 1:
            problems.append(f"threads (PLATFORM_SPARK_THREADS) must be at least 1, not {self.threads}")
        if not JVM_SIZE.match(self.memory):
            problems.append(f"memory (PLATFORM_SPARK_MEMORY) must be a JVM size such as 1536m or 2g, not {self.memory!r}")
        if self.shuffle_partitions < 1:
            problems.append(f"shuffle_partitions must be at least 1, not {self.shuffle_partitions}")
        if not 0 < self.port < 65536:
            problems.append(f"port (PLATFORM_SPARK_PORT) must be a TCP port, not {self.port}")
        if self.idle_stop_minutes < 0:
            problems.append(f"idle_stop_minutes (PLATFORM_SPARK_IDLE_STOP_MINUTES) must be 0 (never) or more, not {self.idle_stop_minutes}")
        if problems:
            raise SparkServerError("Invalid Spark server settings: " + "; ".join(problems))

    def _settings_text(self) -> str:
        return (f"threads={self.threads} (PLATFORM_SPARK_THREADS), memory={self.memory} "
                f"(PLATFORM_SPARK_MEMORY), shuffle_partitions={self.shuffle_partitions}, "
                f"port={self.port} (PLATFORM_SPARK_PORT)")

    def _launch(self, files: _Files) -> dict:
        """What the supervisor runs, and the identity of that server: a running server with
        another fingerprint was started with other settings, versions or jars."""
        spark_home = _pyspark_home()
        jars = delta_jars()
        conf = {
            **shared_spark_conf(self.shuffle_partitions, self.threads),
            **CLIENT_GONE_CONF,
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(self.port),
            "spark.sql.warehouse.dir": str(files.catalog),
        }
        java_options = " ".join([
            f'-Dlog4j2.configurationFile="{files.log4j}"',
            # A JVM out of heap exits (and is started again on next use) rather than limping on,
            # answering gRPC but failing every job.
            "-XX:+ExitOnOutOfMemoryError",
            # Measured on 2 cores at scale factor 1 (five builds, 1g heap): the serial collector
            # was 10 % faster than G1, whose concurrent threads compete with the tasks, and the
            # JVM peaked at 1.66 GB resident instead of 2.2 GB; less code cache, same speed.
            "-XX:+UseSerialGC",
            "-XX:ReservedCodeCacheSize=128m",
        ])
        command = [
            f"{spark_home}/bin/spark-submit",
            "--master", f"local[{self.threads}]",
            "--driver-memory", self.memory,
            "--driver-java-options", java_options,
            "--jars", ",".join(jars),
            *[arg for key, value in conf.items() for arg in ("--conf", f"{key}={value}")],
            "--class", SERVER_CLASS,
            "spark-internal",
        ]
        env = {
            # The wheel's spark-submit cannot find its Spark home from the venv's bin/.
            "SPARK_HOME": spark_home,
            # Keeps Spark from resolving the host name to pick an address at start.
            "SPARK_LOCAL_IP": "127.0.0.1",
            # glibc's malloc otherwise keeps an arena per thread, hundreds of MB for Spark's threads.
            "MALLOC_ARENA_MAX": "2",
            # Python UDFs run on the server: with this venv's Python, and this checkout's
            # modules importable (a function pickled by reference names its module).
            "PYSPARK_PYTHON": _venv_python(),
            "PYTHONPATH": str(PROJECT_DIR),
        }
        identity = {
            "threads": self.threads,
            "memory": self.memory,
            "shuffle_partitions": self.shuffle_partitions,
            "port": self.port,
            "pyspark": version("pyspark"),
            "delta_spark": version("delta_spark"),
            "python": _venv_python(),
            "jars": [Path(jar).name for jar in jars],
            "command": _digest([command, env]),
        }
        return {
            "state_dir": str(files.dir), "command": command, "env": env, "port": self.port,
            "url": self.url, "idle_stop_minutes": self.idle_stop_minutes, "log": str(files.log),
            "identity": identity, "fingerprint": _digest(identity),
        }

    def _refuse_restart_if_leased(self, state: dict, launch: dict, files: _Files) -> None:
        holders = sorted({lease_pid(p) for p in live_leases(files.leases)})
        if holders:
            raise SparkServerError(
                f"The Spark server in {files.dir} runs with other settings than asked "
                f"({'; '.join(_differences(state['identity'], launch['identity']))}) and is in use "
                f"(leases held by pids {', '.join(map(str, holders))}): let those finish, or stop it "
                f"with `{STOP_COMMAND}` (PLATFORM_SPARK_DIR={files.dir}), then run again"
            )

    def _refuse_taken_port(self, files: _Files) -> None:
        """Raise if something listens on the port, unless it is a JVM of this state directory
        that lost its state file (then it is stopped)."""
        if not _port_open(self.port):
            return
        listener = _listener_pid(self.port)
        orphan = listener and _process(listener, _jvm_marker(files))
        if orphan:
            logger.warning("stopping a Spark server JVM of %s without state (pid %s)", files.dir, listener)
            _terminate({"supervisor_pid": -1, "jvm_pid": listener}, files)
        if _port_open(self.port):
            raise SparkServerError(
                f"127.0.0.1:{self.port} is in use by another process (not this project's Spark "
                f"server, state in {files.dir}): set PLATFORM_SPARK_PORT to a free port. "
                f"Listening there: {_describe(listener)}"
            )

    def _start(self, files: _Files, launch: dict) -> None:
        """Launch the supervisor (which launches the JVM) and wait until the JVM answers."""
        files.leases.mkdir(parents=True, exist_ok=True)
        files.log4j.write_text(LOG4J2_PROPERTIES)
        write_json(files.launch, launch)
        _rotate(files.log)
        log_start = files.log.stat().st_size if files.log.exists() else 0
        logger.info("starting the Spark server %s (log %s)", self.url, files.log)
        with open(files.log, "a") as log:
            supervisor = subprocess.Popen(
                [sys.executable, "-m", "resources.spark_supervisor", str(files.launch)],
                cwd=files.dir, env={**os.environ, "PYTHONPATH": launch["env"]["PYTHONPATH"]},
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # not stopped by the Ctrl-C or exit of its starter
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            code = supervisor.poll()
            if code is not None:
                raise SparkServerError(
                    f"The Spark server did not start (its supervisor exited with code {code}) with "
                    f"{self._settings_text()}. Last lines of {files.log}:\n{_tail(files.log, log_start)}"
                )
            state = read_json(files.state)
            if state and state["supervisor_pid"] == supervisor.pid and _jvm_listening(state) \
                    and grpc_answers(self.port):
                return
            time.sleep(0.5)
        state = read_json(files.state) or {"supervisor_pid": supervisor.pid, "jvm_pid": -1}
        _terminate(state, files)
        files.state.unlink(missing_ok=True)
        raise SparkServerError(
            f"The Spark server did not answer on {self.url} within {START_TIMEOUT_SECONDS:.0f} s "
            f"of its start with {self._settings_text()}, and was stopped. "
            f"Last lines of {files.log}:\n{_tail(files.log, log_start)}"
        )


def grpc_answers(port: int, timeout: float = HEALTH_TIMEOUT_SECONDS) -> bool:
    """Whether a gRPC server answers on 127.0.0.1:`port`. Spark Connect does not implement the
    standard health service: its UNIMPLEMENTED answer proves its gRPC server is up, where a
    server that is down or stuck gives UNAVAILABLE or no answer within `timeout`."""
    # No HTTP proxy: a proxy set in the environment must not be asked for 127.0.0.1.
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.enable_http_proxy", 0)]) as channel:
        try:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError as error:
            return error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        return True


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold the server's lock: one process (or thread) at a time starts, stops or leases."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:  # "a": created if missing, never truncated
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _process(pid: int, marker: str) -> psutil.Process | None:
    """The running process `pid` if its command line contains `marker` (so a pid reused by an
    unrelated process after ours died is not taken for ours)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE or marker not in " ".join(process.cmdline()):
            return None
        return process
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def _processes(state: dict, files: _Files) -> list[psutil.Process | None]:
    """The supervisor and the JVM the state names, each None if it is not running."""
    return [_process(state["supervisor_pid"], str(files.launch)), _process(state["jvm_pid"], _jvm_marker(files))]


def _jvm_marker(files: _Files) -> str:
    """A part of the command line of the JVM of this state directory, and of no other."""
    return f"spark.sql.warehouse.dir={files.catalog}"


def _is_up(state: dict, files: _Files) -> bool:
    return all(_processes(state, files))


def _wait_until_answering(state: dict, files: _Files) -> bool:
    """Whether the running server answers, waiting while it may still be starting (its starter
    may have died mid-start) or be briefly unresponsive; False once a process has died."""
    deadline = max(state["started_at"] + START_TIMEOUT_SECONDS, time.time() + UNHEALTHY_GRACE_SECONDS)
    while time.time() < deadline:
        if not _is_up(state, files):
            return False
        if grpc_answers(state["port"]):
            return True
        time.sleep(0.5)
    return False


def _terminate(state: dict, files: _Files) -> bool:
    """Stop the processes the state names that still run: SIGTERM to the supervisor (it stops
    its JVM), or to the JVM if the supervisor is gone; SIGKILL if they outlast the grace
    period. True if there was anything to stop."""
    processes = [p for p in _processes(state, files) if p is not None]
    if not processes:
        return False
    try:
        processes[0].terminate()
    except psutil.NoSuchProcess:
        pass
    _, alive = psutil.wait_procs(processes, timeout=STOP_TIMEOUT_SECONDS)
    for process in alive:
        process.kill()
    psutil.wait_procs(alive, timeout=10)
    return True


def _jvm_listening(state: dict) -> bool:
    """Whether the state's JVM itself listens on the port (and not some other process)."""
    try:
        return any(c.status == psutil.CONN_LISTEN and c.laddr.port == state["port"]
                   for c in psutil.Process(state["jvm_pid"]).net_connections("tcp"))
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _listener_pid(port: int) -> int | None:
    """The process listening on `port`, if this user may see it."""
    try:
        for connection in psutil.net_connections("tcp"):
            if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port and connection.pid:
                return connection.pid
    except (psutil.Error, OSError):
        pass
    return None


def _describe(pid: int | None) -> str:
    try:
        return f"pid {pid} ({' '.join(psutil.Process(pid).cmdline())[:160]})"
    except (psutil.Error, TypeError, ValueError):
        return "a process this user cannot see"


def _forget_dead_leases(files: _Files) -> None:
    """Remove the leases of processes that died without returning them (SIGKILL)."""
    if files.leases.is_dir():
        for lease in files.leases.iterdir():
            pid = lease_pid(lease)
            if pid is not None and not pid_alive(pid):
                lease.unlink(missing_ok=True)


def _mark_used(files: _Files) -> None:
    """Touch the leases directory: the supervisor counts its change time as the server's last
    use, so a caller that got the URL without a lease is not stopped for idleness at once."""
    files.leases.mkdir(parents=True, exist_ok=True)
    os.utime(files.leases)


def _differences(running: dict, asked: dict) -> list[str]:
    """The settings in which the running server differs from the one asked for."""
    named = [
        f"{key} {running.get(key)!r} -> {asked.get(key)!r}"
        for key in asked
        if key not in ("jars", "command") and running.get(key) != asked.get(key)
    ]
    if running.get("jars") != asked.get("jars"):
        named.append("the Delta jars")
    if not named and running.get("command") != asked.get("command"):
        named.append("the server's command line (resources/spark_server.py changed)")
    return named


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _pyspark_home() -> str:
    """The pyspark package directory, which holds Spark's jars and bin/; found without importing
    pyspark."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise SparkServerError(f"pyspark is not installed for {sys.executable}: the Spark server runs from it")
    return spec.submodule_search_locations[0]


def _venv_python() -> str:
    """This environment's Python under one name: `bin/python` and `bin/python3.11` of a venv
    are the same interpreter, and must not count as a change of settings."""
    python = Path(sys.prefix) / "bin" / "python"
    return str(python) if python.exists() else sys.executable


def _rss(pid: int) -> int:
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return 0


def _rotate(log: Path) -> None:
    """Keep one previous log once the log is large; otherwise it keeps each start's lines."""
    if log.exists() and log.stat().st_size > LOG_ROTATE_BYTES:
        os.replace(log, log.with_name(log.name + ".1"))


def _tail(log: Path, start: int, lines: int = 40) -> str:
    try:
        with open(log, "rb") as file:
            file.seek(start)
            text = file.read().decode(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"
