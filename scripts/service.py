"""The running service's processes (`dagster-daemon`, `dagster-webserver`), started on the
project's workspace for tests and benchmarks, each with its output in a log file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from resources.paths import PROJECT_DIR


@dataclass
class Service:
    """One Dagster process group; `command` is its executable's arguments, run in `project`
    (the project, or a copy of it) on that project's workspace.yaml."""

    command: list[str]
    env: dict[str, str]
    log: Path
    project: Path = PROJECT_DIR
    process: subprocess.Popen | None = None

    @classmethod
    def daemon(cls, env: dict[str, str], log: Path, project: Path = PROJECT_DIR) -> "Service":
        return cls(["dagster-daemon", "run", "-w", "workspace.yaml"], env, log, project)

    @classmethod
    def webserver(cls, env: dict[str, str], log: Path, port: int, project: Path = PROJECT_DIR) -> "Service":
        return cls(["dagster-webserver", "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"], env, log, project)

    def start(self) -> None:
        executable = Path(sys.executable).with_name(self.command[0])
        self.process = subprocess.Popen(
            [str(executable), *self.command[1:]], cwd=self.project, env=self.env,
            stdout=self.log.open("a"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def stop(self) -> None:
        """SIGTERM to the whole group (runs it launched included), SIGKILL after a minute."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""

    def wait_for(self, condition: Callable[[], object], timeout: float, what: str):
        """Poll `condition` each second until it returns something truthy; fail with the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(1)
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.tail()}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def responds(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def sensor_ticks(instance: dg.DagsterInstance, sensor: str) -> int:
    """How many ticks the sensor has recorded in the instance."""
    states = [s for s in instance.all_instigator_state() if s.instigator_name == sensor]
    return sum(len(instance.get_ticks(s.instigator_origin_id, s.selector_id)) for s in states)


def finished_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun] | None:
    """Every run, oldest first, once none is queued or in progress and no backfill (which
    launches runs one after another) is still going."""
    if any(backfill.status.value == "REQUESTED" for backfill in instance.get_backfills()):
        return None
    runs = list(reversed(instance.get_runs()))
    return None if any(not run.is_finished for run in runs) else runs
