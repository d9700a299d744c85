"""Fault injection: HTTP errors on chosen calls, runs that fail or hang, tasks that fail."""

import fnmatch
import threading
from dataclasses import dataclass

from .errors import ApiError


@dataclass
class _HttpFault:
    method: str
    path_pattern: str
    status: int
    remaining: int
    error_code: str | None
    message: str
    retry_after: int | None
    after_handling: bool


@dataclass
class RunFault:
    """What the next submitted run does instead of executing its tasks."""

    kind: str  # "fail" or "hang"
    message: str = ""


@dataclass
class _TaskFault:
    task_key: str
    message: str
    remaining: int


class Faults:
    """Queued faults; each is consumed by the calls or runs it applies to."""

    def __init__(self):
        self._lock = threading.Lock()
        self._http: list[_HttpFault] = []
        self._runs: list[RunFault] = []
        self._tasks: list[_TaskFault] = []

    def http_error(
        self,
        method: str,
        path: str,
        status: int = 503,
        times: int = 1,
        error_code: str | None = None,
        message: str | None = None,
        retry_after: int | None = 0,
        after_handling: bool = False,
    ) -> None:
        """The next `times` calls of `method` on `path` (fnmatch pattern, no query) fail.

        429 and 503 carry `Retry-After` (0 s by default) because the SDK retries those and
        would otherwise wait its default back-off. With `after_handling` the call takes effect
        first and only its answer is lost, as when a gateway times out on a request the
        workspace did carry out: a retried `runs/submit` then shows whether it starts twice.
        """
        with self._lock:
            self._http.append(
                _HttpFault(
                    method.upper(),
                    path,
                    status,
                    times,
                    error_code,
                    message or f"Injected fault: HTTP {status}",
                    retry_after if status in (429, 503) else None,
                    after_handling,
                )
            )

    def next_run_fails(self, message: str = "Injected failure") -> None:
        """The next run (runs/submit or jobs/run-now) ends TERMINATED/FAILED with `message`,
        without running any task."""
        with self._lock:
            self._runs.append(RunFault("fail", message))

    def next_run_hangs(self) -> None:
        """The next run (runs/submit or jobs/run-now) stays RUNNING (no process) until
        cancelled or timed out."""
        with self._lock:
            self._runs.append(RunFault("hang"))

    def next_task_fails(self, task_key: str, message: str = "Injected task failure",
                        times: int = 1) -> None:
        """The next `times` executions of tasks named `task_key` (in any run or repair) end
        TERMINATED/FAILED as if their code failed: `message` is get-output's `error`. The
        task's cluster still starts (the failure happens on it), but its process is never
        started, so it writes nothing."""
        with self._lock:
            self._tasks.append(_TaskFault(task_key, message, times))

    def clear(self) -> None:
        with self._lock:
            self._http.clear()
            self._runs.clear()
            self._tasks.clear()

    def check_http(self, method: str, path: str, after_handling: bool = False) -> None:
        """Raise the first matching queued HTTP fault of that timing, consuming one use."""
        with self._lock:
            for fault in self._http:
                if (fault.method == method and fault.after_handling == after_handling
                        and fnmatch.fnmatchcase(path, fault.path_pattern)):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._http.remove(fault)
                    headers = {}
                    if fault.retry_after is not None:
                        headers["Retry-After"] = str(fault.retry_after)
                    raise ApiError(fault.status, fault.message, fault.error_code, headers)

    def take_run_fault(self) -> RunFault | None:
        with self._lock:
            return self._runs.pop(0) if self._runs else None

    def take_task_fault(self, task_key: str) -> str | None:
        """The message of a queued failure for this task key, consuming one use."""
        with self._lock:
            for fault in self._tasks:
                if fault.task_key == task_key:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._tasks.remove(fault)
                    return fault.message
        return None
