"""The warm Spark server's supervisor: `python -m resources.spark_supervisor <launch.json>`.

A small detached process that owns the Spark Connect JVM, so the server outlives whoever started
it (a job, a test, `dagster dev`) and is stopped the same way whoever asks. It starts the JVM
as its child, writes the state file the orchestrator reads, then waits:
- the JVM exits: it removes the state and exits;
- SIGTERM (`LocalSparkServer.stop()`): it stops the JVM (SIGTERM, SIGKILL after a grace
  period), removes the state and exits;
- `idle_stop_minutes` > 0 and no live lease for that long: it stops the server the same way.

Standard library only (no dagster, no pyspark), so it costs a few MB. The orchestrator side
(`resources.spark_server`) imports the file layout and lease helpers below, so both agree.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# The files of a server under its state directory.
STATE_FILE = "server.json"  # written by the supervisor while its JVM runs
LAUNCH_FILE = "launch.json"  # what to run, written by the process that starts the server
LOCK_FILE = "lock"  # flock: one process at a time starts, stops or idle-stops the server
LEASES_DIR = "leases"  # one file per lease, named `<holder pid>-<unique>`
LOG_FILE = "server.log"  # the supervisor's lines and the JVM's output

POLL_SECONDS = 1.0
JVM_STOP_GRACE_SECONDS = 20.0  # a JVM with no work stops in about 2 s (shutdown hooks)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def lease_pid(lease: Path) -> int | None:
    """The pid a lease file is named after, or None for a file that is not a lease."""
    head = lease.name.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def live_leases(leases_dir: Path) -> list[Path]:
    """The lease files whose holder is still running; a holder that died holds nothing."""
    if not leases_dir.is_dir():
        return []
    return [p for p in sorted(leases_dir.iterdir()) if (pid := lease_pid(p)) and pid_alive(pid)]


def read_json(path: Path) -> dict | None:
    """The file's JSON object, or None if it is missing or half-written."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_json(path: Path, value: dict) -> None:
    """Write through a temporary file and a rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=2))
    os.replace(tmp, path)


def log(message: str) -> None:
    """A line in the server log (the supervisor's stdout is the log file)."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} supervisor[{os.getpid()}]: {message}", flush=True)


def _die_with_supervisor() -> None:
    """Runs in the JVM's process before exec: Linux sends it SIGTERM when the supervisor dies,
    even by SIGKILL, so a JVM is never left running without its supervisor."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class Supervisor:
    """Runs one JVM described by a launch file until it exits, is stopped, or is idle too long."""

    def __init__(self, launch: dict):
        self.launch = launch
        self.state_dir = Path(launch["state_dir"])
        self.state_file = self.state_dir / STATE_FILE
        self.leases_dir = self.state_dir / LEASES_DIR
        self.idle_seconds = float(launch["idle_stop_minutes"]) * 60
        self.stop_requested = False
        self.jvm: subprocess.Popen | None = None
        self.last_busy = time.time()

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._request_stop)
        self.jvm = subprocess.Popen(
            self.launch["command"], cwd=self.state_dir, env={**os.environ, **self.launch["env"]},
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_supervisor if sys.platform.startswith("linux") else None,
        )
        started_at = time.time()
        self.last_busy = started_at
        write_json(self.state_file, {
            "supervisor_pid": os.getpid(), "jvm_pid": self.jvm.pid, "port": self.launch["port"],
            "url": self.launch["url"], "started_at": started_at,
            "fingerprint": self.launch["fingerprint"], "identity": self.launch["identity"],
            "idle_stop_minutes": self.launch["idle_stop_minutes"], "log": self.launch["log"],
        })
        idle = f"idle stop after {self.launch['idle_stop_minutes']} min" if self.idle_seconds else "no idle stop"
        log(f"started JVM pid {self.jvm.pid} for {self.launch['url']} ({idle})")
        try:
            return self._wait()
        finally:
            self._remove_state()

    def _wait(self) -> int:
        while True:
            code = self.jvm.poll()
            if code is not None:
                log(f"JVM exited with code {code}")
                return 1
            if self.stop_requested:
                log("stop requested")
                self._stop_jvm()
                return 0
            if self.idle_seconds and self._idle_for() > self.idle_seconds and self._stop_if_idle():
                return 0
            time.sleep(POLL_SECONDS)

    def _request_stop(self, signum, frame) -> None:
        self.stop_requested = True

    def _idle_for(self) -> float:
        """Seconds since the server was last busy: a live lease now, or the leases directory's
        last change (a lease taken or returned, or an `ensure_running()` touching it)."""
        now = time.time()
        if live_leases(self.leases_dir):
            self.last_busy = now
        elif self.leases_dir.is_dir():
            self.last_busy = max(self.last_busy, self.leases_dir.stat().st_mtime)
        return now - self.last_busy

    def _stop_if_idle(self) -> bool:
        """Stop the server under the start lock, so no one is handed its URL meanwhile; if a
        process holds the lock (starting, stopping or leasing it), look again next time."""
        with open(self.state_dir / LOCK_FILE, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            # Held until the JVM has exited: whoever waits for the lock finds the port free.
            if self._idle_for() <= self.idle_seconds:
                return False
            log(f"no lease for {self.idle_seconds / 60:g} min: stopping the idle server")
            self._stop_jvm()
            self._remove_state()
            return True

    def _stop_jvm(self) -> None:
        if self.jvm.poll() is not None:
            return
        self.jvm.terminate()
        try:
            self.jvm.wait(timeout=JVM_STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            log(f"JVM still running {JVM_STOP_GRACE_SECONDS:g} s after SIGTERM: SIGKILL")
            self.jvm.kill()
            self.jvm.wait()
        log(f"JVM stopped (code {self.jvm.returncode})")

    def _remove_state(self) -> None:
        """Remove the state file if it is still this supervisor's (a newer server's is kept)."""
        state = read_json(self.state_file)
        if state and state.get("supervisor_pid") == os.getpid():
            self.state_file.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m resources.spark_supervisor <launch.json>", file=sys.stderr)
        return 2
    launch = read_json(Path(argv[0]))
    if launch is None:
        print(f"no launch file at {argv[0]}", file=sys.stderr)
        return 2
    return Supervisor(launch).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
