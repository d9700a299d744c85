"""Local table jobs as processes in Dagster Pipes sessions, with the next job's process started
ahead of its job.

A job process spends about 0.5 s importing Spark's client and 0.3 s opening its session on the
Spark server before it does any work. When a run's steps execute one after another in one
process, the runner starts the next job's process while a job runs (a spare); the next step
hands it its Pipes bootstrap on stdin, as every local job process gets it
(`python -m jobs.entrypoint --wait-for-job`). Each job still has a process of its own, so a
failure stays in it.

A process has at most one spare, whichever run started it: a process that executes runs one
after another (`make demo`, `make update`) starts one before each run, while Dagster plans the
run, for the run's first job (`start_spare`). A run ends the spare it leaves unused.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg
import psutil

from jobs.contract import WAIT_FOR_JOB_FLAG
from resources.paths import PROJECT_DIR

TERMINATION_TIMEOUT_SECONDS = 20  # as PipesSubprocessClient: SIGINT, then this long to exit
SERVER_WATCH_SECONDS = 1.0


@dataclass(frozen=True)
class SparkServerIdentity:
    """The server a spare's session is open on: a spare for another (or a restarted) server is
    not used."""

    url: str | None  # None: the job starts a Spark of its own
    pid: int | None
    log: str | None = None

    def stopped(self) -> bool:
        """Whether the server's JVM has exited (a job's session on it is then gone)."""
        return self.pid is not None and not psutil.pid_exists(self.pid)


# This process's spare job process, and the server its session is open on.
_spare: tuple[subprocess.Popen, SparkServerIdentity] | None = None


class JobProcesses:
    """Runs `python -m jobs.entrypoint` processes for a runner, with this process's spare."""

    def __init__(self, env: Mapping[str, str]):
        self._env = {**os.environ, **env}
        self.started = 0  # jobs run through this object

    def run(self, context: dg.AssetExecutionContext, extras: dict, server: SparkServerIdentity,
            start_spare: bool) -> dg.PipesClientCompletedInvocation:
        """Run one job in a Pipes session, like PipesSubprocessClient.run; with `start_spare`,
        start the next job's process once this one has its bootstrap."""
        with dg.open_pipes_session(
            context=context, context_injector=dg.PipesTempFileContextInjector(),
            message_reader=dg.PipesTempFileMessageReader(), extras=extras,
        ) as session:
            process = _take_spare(server) or self._start(server)
            self.started += 1
            try:
                process.stdin.write(json.dumps(session.get_bootstrap_env_vars()) + "\n")
                process.stdin.close()
            except BrokenPipeError:
                pass  # it ended before reading: its exit code says why
            if start_spare:
                self.start_spare(server)
            try:
                self._wait(process, server)
                if process.returncode != 0:
                    raise dg.Failure(
                        f"External execution process failed with code {process.returncode}")
            except dg.DagsterExecutionInterruptedError:
                context.log.info("[pipes] execution interrupted, sending SIGINT to subprocess.")
                process.send_signal(signal.SIGINT)
                process.wait(timeout=TERMINATION_TIMEOUT_SECONDS)
                raise
        return dg.PipesClientCompletedInvocation(session)

    @staticmethod
    def _wait(process: subprocess.Popen, server: SparkServerIdentity) -> None:
        """Wait for the job; fail it at once if the server stops under it, which Spark's client
        would otherwise retry for about ten minutes."""
        while True:
            try:
                process.wait(timeout=SERVER_WATCH_SECONDS)
                return
            except subprocess.TimeoutExpired:
                if server.stopped():
                    process.kill()
                    process.wait()
                    raise dg.Failure(
                        f"the Spark server at {server.url} (pid {server.pid}) stopped while the job ran; "
                        f"its log is {server.log}. The next job starts it again.") from None

    def start_spare(self, server: SparkServerIdentity) -> None:
        """Start the next job's process now, unless one is waiting already."""
        global _spare
        if _spare is None:
            _spare = (self._start(server), server)

    def _start(self, server: SparkServerIdentity) -> subprocess.Popen:
        command = [sys.executable, "-m", "jobs.entrypoint", WAIT_FOR_JOB_FLAG, *([server.url] if server.url else [])]
        return subprocess.Popen(command, cwd=PROJECT_DIR, env=self._env, stdin=subprocess.PIPE, text=True)


def end_spare() -> None:
    """End this process's spare, if any: at the end of its stdin it exits."""
    global _spare
    if _spare is None:
        return
    process, _ = _spare
    _spare = None
    process.stdin.close()
    try:
        process.wait(timeout=TERMINATION_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _take_spare(server: SparkServerIdentity) -> subprocess.Popen | None:
    """The spare, if its session is open on `server` and it still runs (else it is ended)."""
    global _spare
    if _spare is None:
        return None
    process, spare_server = _spare
    if spare_server == server and process.poll() is None:
        _spare = None
        return process
    end_spare()
    return None
