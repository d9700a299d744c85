"""The state of a Databricks run, read once per poll interval for all the steps on a machine.

Every step of a Dagster run follows its own task of the shared Databricks run, and `runs/get`
answers with the whole run. Polled by each step on its own, a run of N tables costs steps × N
tasks per interval: at 300 tables, 100 waiting steps each read all 300 tasks every interval. The
steps of a run on one machine (the multiprocess executor's step processes) share one read
instead: the first to find the state older than the interval reads it, holding a file lock,
and writes it to a file the others read. This is a cache only: steps on another machine keep
their own, and no step's outcome depends on the lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from databricks.sdk import WorkspaceClient
from databricks.sdk.service import jobs

CACHE_DIR = Path(tempfile.gettempdir()) / "platform-databricks-runs"
KEEP_SECONDS = 86_400  # a run's file outlives its last read by a day


def read_run(workspace: WorkspaceClient, run_id: int, max_age: float) -> jobs.Run:
    """Databricks run `run_id` with its repair history, as read from `workspace` by any process
    on this machine at most `max_age` seconds ago (0: read it now)."""
    path = _cache_file(workspace, run_id)
    if (run := _fresh(path, max_age)) is not None:
        return run
    CACHE_DIR.mkdir(exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the others wait for one read, then take its answer
        if (run := _fresh(path, max_age)) is not None:
            return run
        run = workspace.jobs.get_run(run_id, include_history=True)
        written = path.with_suffix(f".{os.getpid()}.tmp")
        written.write_text(json.dumps(run.as_dict()))
        os.replace(written, path)
    _remove_stale()
    return run


def _cache_file(workspace: WorkspaceClient, run_id: int) -> Path:
    workspace_id = hashlib.sha256(workspace.config.host.encode()).hexdigest()[:12]
    return CACHE_DIR / f"{workspace_id}-{run_id}.json"


def _fresh(path: Path, max_age: float) -> jobs.Run | None:
    try:
        if time.time() - path.stat().st_mtime < max_age:
            return jobs.Run.from_dict(json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):  # not read yet, or replaced while being read
        pass
    return None


def _remove_stale() -> None:
    cutoff = time.time() - KEEP_SECONDS
    for path in CACHE_DIR.iterdir():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except FileNotFoundError:  # removed by another process meanwhile
            pass
