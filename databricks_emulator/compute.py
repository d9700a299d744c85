"""Cluster starts: which tasks start a cluster, counted so tests and benchmarks can see how
many clusters a workload would have paid for, and optionally as slow as a cold start. And the
capacity a cluster or the workspace has: execution contexts, concurrent task runs."""

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

from .runs import Execution, Run, TaskRun


@dataclass(frozen=True)
class ClusterStart:
    run_id: int
    kind: str  # "job_cluster" (shared by the tasks of one execution) or "new_cluster" (one task's)
    key: str  # the job_cluster_key, or the task_key of a new_cluster task
    repair_id: int | None  # None: the run's original execution


class ClusterStarts:
    """A job cluster starts once per execution of a run (original or repair), when its first
    task needs it; tasks that need it meanwhile wait for the same start. A new_cluster task
    starts its own cluster. existing_cluster_id and environment_key (serverless) start none."""

    def __init__(self, seconds: float = 0):
        self.seconds = seconds
        self._records: list[ClusterStart] = []
        self._lock = threading.Lock()

    @property
    def records(self) -> list[ClusterStart]:
        with self._lock:
            return list(self._records)

    def ready(self, run: Run, task: TaskRun, execution: Execution,
              cancelled: Callable[[], bool]) -> bool:
        """Block until the task's compute is up; False if the run was cancelled meanwhile."""
        spec = task.spec
        if spec.get("job_cluster_key"):
            return self._job_cluster(run, spec["job_cluster_key"], execution, cancelled)
        if spec.get("new_cluster"):
            self._record(ClusterStart(run.run_id, "new_cluster", task.task_key, execution.repair_id))
            return self._starting(cancelled)
        return not cancelled()

    def _job_cluster(self, run: Run, key: str, execution: Execution, cancelled) -> bool:
        with execution.lock:
            started = execution.job_clusters.get(key)
            first = started is None
            if first:
                started = execution.job_clusters[key] = threading.Event()
        if first:
            self._record(ClusterStart(run.run_id, "job_cluster", key, execution.repair_id))
            ok = self._starting(cancelled)
            started.set()  # waiters re-check the cancel themselves
            return ok
        while not started.wait(0.02):
            if cancelled():
                return False
        return not cancelled()

    def _starting(self, cancelled) -> bool:
        deadline = time.monotonic() + self.seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if cancelled():
                return False
            time.sleep(min(0.02, remaining))
        return not cancelled()

    def _record(self, start: ClusterStart) -> None:
        with self._lock:
            self._records.append(start)


class Capacity:
    """At most `limit` holders per key at once: a cluster's execution contexts, the
    workspace's running task runs."""

    def __init__(self, limit: int):
        self.limit = limit
        self._held: dict = {}
        self._lock = threading.Lock()

    def take(self, key) -> bool:
        """Hold one for `key`; False (holding nothing) when `key` is at the limit."""
        with self._lock:
            if self._held.get(key, 0) >= self.limit:
                return False
            self._held[key] = self._held.get(key, 0) + 1
            return True

    def take_when_free(self, key, cancelled: Callable[[], bool]) -> bool:
        """Wait until one for `key` is free and hold it; False if cancelled meanwhile."""
        while not self.take(key):
            if cancelled():
                return False
            time.sleep(0.02)
        return True

    def give_back(self, key) -> None:
        with self._lock:
            self._held[key] -= 1
            if not self._held[key]:
                del self._held[key]  # job clusters come and go: keep only the busy ones

    @contextmanager
    def holding(self, key):
        """Hold one for `key` while inside; yields whether it could. A None key is unlimited."""
        taken = key is None or self.take(key)
        try:
            yield taken
        finally:
            if taken and key is not None:
                self.give_back(key)


def cluster_of(run: Run, task: TaskRun, execution: Execution) -> tuple | None:
    """The cluster a task runs on (None: serverless). A job cluster lives for one execution of
    a run, a new_cluster for one task; an existing cluster is shared by every run."""
    spec = task.spec
    if spec.get("existing_cluster_id"):
        return "existing", spec["existing_cluster_id"]
    if spec.get("job_cluster_key"):
        return "job", run.run_id, execution.repair_id, spec["job_cluster_key"]
    if spec.get("new_cluster"):
        return "new", task.run_id
    return None
