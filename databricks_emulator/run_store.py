"""Every run and task run by id, for runs/submit, jobs/run-now and repairs alike."""

import itertools
import threading

from .errors import bad_request
from .runs import Run, TaskRun


class RunStore:
    """Run ids, task run ids and repair ids come from one counter, so no id means two things."""

    def __init__(self, runs: dict):
        self.runs = runs  # the emulator's `runs`: run_id -> Run
        self._ids = itertools.count(1)
        self._tasks: dict[int, tuple[Run, TaskRun]] = {}
        # `lock` guards `runs` and callers' check-then-add steps (idempotency, concurrency
        # limits); callers may take a run's lock inside it. Ids and the task index have a lock
        # of their own, taken last, so a repair holding its run's lock can still get ids.
        self.lock = threading.RLock()
        self._index_lock = threading.Lock()

    def new_id(self) -> int:
        with self._index_lock:
            return next(self._ids)

    def add(self, run: Run) -> None:
        with self.lock:
            self.runs[run.run_id] = run
        self.add_tasks(run, run.tasks)

    def add_tasks(self, run: Run, tasks: list[TaskRun]) -> None:
        with self._index_lock:
            for task in tasks:
                self._tasks[task.run_id] = (run, task)

    def run(self, raw_id) -> Run:
        run_id = parse_run_id(raw_id)
        with self.lock:
            run = self.runs.get(run_id)
        if run is None:
            # Databricks' answer; the SDK maps exactly this message to ResourceDoesNotExist.
            raise bad_request(f"Run {run_id} does not exist.")
        return run

    def task(self, task_run_id: int) -> tuple[Run, TaskRun] | None:
        with self._index_lock:
            return self._tasks.get(task_run_id)

    def runs_of_job(self, job_id: int) -> list[Run]:
        with self.lock:
            return [run for run in self.runs.values() if run.job_id == job_id]


def parse_run_id(raw) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise bad_request(f"Invalid run_id: {raw!r}")
