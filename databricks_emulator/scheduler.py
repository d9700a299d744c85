"""Runs one execution of a run (the original run, or one repair) in parallel: each task gets
its own thread as soon as its depends_on are done, if its run_if holds for their results."""

import logging
import threading
import time
from typing import Callable

from .runs import Execution, Run, TaskRun

log = logging.getLogger("databricks_emulator")

FAILED = ("FAILED", "TIMEDOUT", "UPSTREAM_FAILED")
CANCELED = ("CANCELED", "UPSTREAM_CANCELED")


def run_if_holds(condition: str, results: list[str]) -> bool:
    """Databricks' run_if conditions over the dependencies' result states. An EXCLUDED
    dependency (its own run_if did not hold) did not run: it neither succeeded nor failed."""
    succeeded = [r == "SUCCESS" for r in results]
    failed = [r in FAILED for r in results]
    if condition == "ALL_SUCCESS":
        return all(succeeded)
    if condition == "AT_LEAST_ONE_SUCCESS":
        return any(succeeded)
    if condition == "NONE_FAILED":
        return not any(failed) and any(r != "EXCLUDED" for r in results)
    if condition == "ALL_DONE":
        return True
    if condition == "AT_LEAST_ONE_FAILED":
        return any(failed)
    if condition == "ALL_FAILED":
        return bool(results) and all(failed)
    raise ValueError(f"unknown run_if {condition}")  # validated at submit/create


def not_run_result(condition: str, results: list[str]) -> tuple[str, str]:
    """(result_state, message) of a task whose run_if did not hold."""
    if condition not in ("ALL_FAILED", "AT_LEAST_ONE_FAILED"):
        if any(r in FAILED for r in results):
            return "UPSTREAM_FAILED", "An upstream task failed."
        if any(r in CANCELED for r in results):
            return "UPSTREAM_CANCELED", "An upstream task was cancelled."
    return "EXCLUDED", f"Excluded: run_if {condition} was not met."


class Scheduler:
    def __init__(self, run_task: Callable[[Run, TaskRun, Execution], None]):
        self._run_task = run_task  # runs one task to its end, in the calling thread

    def run(self, run: Run, execution: Execution) -> None:
        """Return once every task of the execution has ended."""
        mine = {task.task_key: task for task in execution.tasks}
        todo = dict(mine)
        threads = []
        wake = threading.Event()
        for task in todo.values():
            if any(key in mine for key in task.upstream):
                task.life_cycle_state = "BLOCKED"
        while not all(task.is_done() for task in mine.values()):
            if run.cancel_requested.is_set():
                self._end_all(todo, "CANCELED", "Run cancelled.")
            elif execution.deadline is not None and time.monotonic() > execution.deadline:
                self._end_all(todo, "TIMEDOUT", "Run timed out.")
            for key, task in list(todo.items()):
                if any(dep in mine and not mine[dep].is_done() for dep in task.upstream):
                    continue
                del todo[key]
                results = [self._result(run, dep) for dep in task.upstream]
                condition = task.spec.get("run_if", "ALL_SUCCESS")
                if run_if_holds(condition, results):
                    task.life_cycle_state = "PENDING"
                    thread = threading.Thread(
                        target=self._task_thread, args=(run, task, execution, wake),
                        name=f"emulator-task-{task.run_id}", daemon=True,
                    )
                    threads.append(thread)
                    thread.start()
                else:
                    task.finish("TERMINATED", *not_run_result(condition, results))
            wake.wait(0.05)  # a finishing task wakes us; the timeout catches cancel and deadline
            wake.clear()
        for thread in threads:
            thread.join(timeout=1)

    @staticmethod
    def _result(run: Run, task_key: str) -> str:
        latest = run.latest(task_key)
        # A dependency that is not part of this run (left out by run-now's `only`) counts as
        # satisfied: it neither runs nor fails.
        return "SUCCESS" if latest is None else latest.result_state

    @staticmethod
    def _end_all(todo: dict, result_state: str, message: str) -> None:
        for task in todo.values():
            task.finish("TERMINATED", result_state, message)
        todo.clear()

    def _task_thread(self, run: Run, task: TaskRun, execution: Execution, wake) -> None:
        try:
            self._run_task(run, task, execution)
        except Exception as e:
            # Never leave a task (and so its run) unfinished because the emulator broke.
            log.exception("task %s of run %s failed inside the emulator", task.task_key, run.run_id)
            task.finish("INTERNAL_ERROR", "FAILED", f"Emulator error: {type(e).__name__}: {e}")
        finally:
            wake.set()
