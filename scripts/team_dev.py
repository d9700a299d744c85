"""`make dev` with PLATFORM_INSTANCE=postgres: the layout a team deploys, on this machine.

    dagster code-server start   the code location, at the host and port of workspace.team.yaml:
                                it loads the definitions and launches the runs (run processes
                                are its children, so it needs what the jobs need)
    dagster-webserver           the UI on 127.0.0.1:3000; a team may run several
    dagster-daemon run          sensors, the run queue, backfills: one per deployment

The webserver and the daemon read the code location through workspace.team.yaml; all three open
the instance of $DAGSTER_HOME (instances/postgres.yaml). Ctrl-C stops them in reverse order:
the daemon, the webserver, then the code server (and the runs it launched).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from resources.paths import PROJECT_DIR
from scripts import postgres

TEAM_WORKSPACE = PROJECT_DIR / "workspace.team.yaml"
LOCAL_WORKSPACE = PROJECT_DIR / "workspace.yaml"
WEBSERVER_HOST = "127.0.0.1"
WEBSERVER_PORT = 3000
READY_TIMEOUT_SECONDS = 180.0  # loading the definitions takes a few seconds on 2 cores
STOP_TIMEOUT_SECONDS = 30.0
# The service name Dagster's code server reports in the standard gRPC health service.
HEALTH_SERVICE = "DagsterApi"


@dataclass(frozen=True)
class CodeServer:
    """Where the code server listens (the team workspace) and what it loads (workspace.yaml)."""

    host: str
    port: int
    location_name: str
    module_name: str


def code_server(team_workspace: Mapping, local_workspace: Mapping) -> CodeServer:
    """The one gRPC location of the team workspace, loading the module of the local workspace;
    fails if their location names differ (runs and sensor state are kept per location name)."""
    grpc_server = _single_location(team_workspace, "grpc_server")
    module = _single_location(local_workspace, "python_module")
    if grpc_server["location_name"] != module["location_name"]:
        raise ValueError(f"location names differ: {grpc_server['location_name']!r} in {TEAM_WORKSPACE.name}, "
                         f"{module['location_name']!r} in {LOCAL_WORKSPACE.name}")
    return CodeServer(host=grpc_server["host"], port=int(grpc_server["port"]),
                      location_name=grpc_server["location_name"], module_name=module["module_name"])


def _single_location(workspace: Mapping, kind: str) -> Mapping:
    entries = workspace.get("load_from") or []
    if len(entries) != 1 or kind not in entries[0]:
        raise ValueError(f"expected one `{kind}` location in load_from, found {entries}")
    return entries[0][kind]


def commands(server: CodeServer, workspace: Path) -> dict[str, list[str]]:
    """Each process's command, by name, in start order."""
    return {
        "code server": ["dagster", "code-server", "start", "-h", server.host, "-p", str(server.port),
                        "-m", server.module_name, "--location-name", server.location_name],
        "webserver": ["dagster-webserver", "-h", WEBSERVER_HOST, "-p", str(WEBSERVER_PORT), "-w", str(workspace)],
        "daemon": ["dagster-daemon", "run", "-w", str(workspace)],
    }


def missing_instance_env(environ: Mapping[str, str]) -> list[str]:
    """The PLATFORM_PG_* variables the PostgreSQL instance file reads that are not set."""
    if environ.get("PLATFORM_INSTANCE") != "postgres":
        return []
    return [name for name in postgres.CONNECTION_ENVS if not environ.get(name)]


def serving(host: str, port: int) -> bool:
    """The code server answers the gRPC health check: it has loaded the code location (its
    proxy starts serving only after the first load)."""
    try:
        with grpc.insecure_channel(f"{host}:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=HEALTH_SERVICE), timeout=2)
    except grpc.RpcError:
        return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def launch(command: list[str]) -> subprocess.Popen:
    """Start a process in a session of its own: Ctrl-C reaches only this script, which then stops
    the processes in order."""
    executable = Path(sys.executable).with_name(command[0])
    return subprocess.Popen([str(executable), *command[1:]], cwd=PROJECT_DIR, start_new_session=True)


def stop(name: str, process: subprocess.Popen) -> None:
    """SIGTERM to the process's group (the runs a code server launched included), then SIGKILL."""
    if process.poll() is not None:
        return
    print(f"stopping the {name} (pid {process.pid})", flush=True)
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_until_serving(server: CodeServer, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while not serving(server.host, server.port):
        if process.poll() is not None:
            raise RuntimeError(f"the code server exited ({process.returncode}) before it served")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the code server did not answer on {server.host}:{server.port} "
                               f"within {READY_TIMEOUT_SECONDS:.0f} s")
        time.sleep(0.5)


def _interrupt(signum: int, frame: object) -> None:
    """Ctrl-C, or SIGTERM (a supervisor, `kill`): stop the processes."""
    raise KeyboardInterrupt


def main() -> int:
    missing = missing_instance_env(os.environ)
    if missing:
        print(f"error: {', '.join(missing)} not set: run `eval \"$(.venv/bin/python -m scripts.postgres env)\"` "
              "first, or use `make dev`", file=sys.stderr)
        return 1
    server = code_server(yaml.safe_load(TEAM_WORKSPACE.read_text()), yaml.safe_load(LOCAL_WORKSPACE.read_text()))
    if server.host in ("127.0.0.1", "localhost") and not postgres.port_free(server.port):
        print(f"error: port {server.port} ({TEAM_WORKSPACE.name}) is in use: another code server?",
              file=sys.stderr)
        return 1

    # Our own handlers, even where SIGINT came ignored (a script's `&`): the children then start
    # with SIGINT's default, which Dagster's processes need, since they map SIGTERM to it.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    started: dict[str, subprocess.Popen] = {}
    try:
        for name, command in commands(server, TEAM_WORKSPACE).items():
            started[name] = launch(command)
            if name == "code server":
                begun = time.monotonic()
                wait_until_serving(server, started[name])
                print(f"code server serving {server.location_name} on {server.host}:{server.port} "
                      f"(ready in {time.monotonic() - begun:.1f} s)", flush=True)
        print(f"UI at http://{WEBSERVER_HOST}:{WEBSERVER_PORT}; Ctrl-C stops all three", flush=True)
        while True:
            for name, process in started.items():
                if process.poll() is not None:
                    print(f"the {name} exited ({process.returncode}): stopping the others", file=sys.stderr)
                    return process.returncode or 1
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
        for name, process in reversed(started.items()):
            stop(name, process)


if __name__ == "__main__":
    sys.exit(main())
