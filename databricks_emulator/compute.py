"""Cluster starts: which tasks start a cluster, counted so tests and benchmarks can see how
many clusters a workload would have paid for, and optionally as slow as a cold start."""

import threading
import time
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
