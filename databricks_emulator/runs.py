"""Run records: the state a `runs/get` reports, kept consistent under a lock."""

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

TERMINAL = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")
# Databricks' state_message when the task's own code failed; the error is in runs/get-output.
WORKLOAD_FAILED = "Workload failed, see run output for details"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class TaskRun:
    """One attempt of one task of a run: its spec, its process and where its output went.
    A repair adds a new TaskRun (new run_id) for each task it reruns; attempt_number counts
    retries (max_retries, which the emulator does not do), so a repair's attempt is 0 too."""

    task_key: str
    run_id: int
    spec: dict
    dir: Path
    attempt_number: int = 0
    repair_id: int | None = None  # None: the run's original execution
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = ""
    error: str = ""  # runs/get-output's `error` when the task's own code failed
    start_time: int = 0
    end_time: int = 0
    command: list[str] = field(default_factory=list)
    pid: int | None = None
    exit_code: int | None = None
    ignored_libraries: list = field(default_factory=list)

    @property
    def stdout_path(self) -> Path:
        return self.dir / "stdout"

    @property
    def stderr_path(self) -> Path:
        return self.dir / "stderr"

    @property
    def upstream(self) -> list[str]:
        return [d["task_key"] for d in self.spec.get("depends_on") or []]

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def state_json(self) -> dict:
        state = {"life_cycle_state": self.life_cycle_state, "state_message": self.state_message}
        if self.result_state:
            state["result_state"] = self.result_state
        return state

    def is_done(self) -> bool:
        return self.life_cycle_state in TERMINAL

    def finish(self, life_cycle_state: str, result_state: str, message: str) -> None:
        self.result_state = result_state
        self.state_message = message
        self.end_time = now_ms()
        self.life_cycle_state = life_cycle_state  # last: a terminal state comes with its result

    def fail_workload(self, error: str) -> None:
        """The task's own code failed: runs/get says so generically, get-output says `error`."""
        self.error = error
        self.finish("TERMINATED", "FAILED", WORKLOAD_FAILED)


@dataclass
class Execution:
    """One pass over some of a run's tasks: the original run, or one repair. It owns the job
    clusters started for it (they terminate when it ends, so a repair starts them again)."""

    repair_id: int | None
    tasks: list[TaskRun]
    deadline: float | None = None  # time.monotonic() value, from the settings' timeout_seconds
    start_time: int = 0
    end_time: int = 0
    state: dict = field(default_factory=dict)
    job_clusters: dict = field(default_factory=dict)  # job_cluster_key -> Event set once started
    lock: threading.Lock = field(default_factory=threading.Lock)

    def history_json(self) -> dict:
        item = {
            "type": "ORIGINAL" if self.repair_id is None else "REPAIR",
            "start_time": self.start_time,
            "end_time": self.end_time,
            "state": dict(self.state),
            "task_run_ids": [task.run_id for task in self.tasks],
        }
        if self.repair_id is not None:
            item["id"] = self.repair_id
        return item


@dataclass
class Run:
    """A run (runs/submit or jobs/run-now). `history` lists every (life_cycle_state,
    result_state) it went through. `submitted` holds the settings its tasks come from: the
    submit body, or the job's settings (replaced by the job's current settings on repair)."""

    run_id: int
    submitted: dict
    tasks: list[TaskRun]  # every attempt of every task, oldest first
    dir: Path
    run_page_url: str
    fault: object = None
    run_type: str = "SUBMIT_RUN"
    job_id: int | None = None  # set for JOB_RUN
    job_parameters: list = field(default_factory=list)  # [{name, default, value}] of JOB_RUN
    executions: list[Execution] = field(default_factory=list)
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = ""
    submit_time: int = field(default_factory=now_ms)
    start_time: int = 0
    end_time: int = 0
    history: list = field(default_factory=list)
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    lock: threading.RLock = field(default_factory=threading.RLock)
    thread: threading.Thread | None = None

    def __post_init__(self):
        self.history.append((self.life_cycle_state, None))
        if not self.executions:
            self.executions.append(Execution(None, list(self.tasks)))

    @property
    def state(self) -> dict:
        with self.lock:
            return self._state_json()

    @property
    def task(self) -> TaskRun:
        """The only task of a single-task run (the usual Pipes case), in its latest attempt."""
        (task,) = self.latest_tasks()
        return task

    @property
    def execution(self) -> Execution:
        """The latest execution: the original run or its latest repair."""
        return self.executions[-1]

    @property
    def latest_repair_id(self) -> int | None:
        return self.execution.repair_id

    def latest_tasks(self) -> list[TaskRun]:
        """The latest attempt of each task, in the order tasks were first added."""
        latest: dict[str, TaskRun] = {}
        with self.lock:
            for task in self.tasks:
                latest[task.task_key] = task
        return list(latest.values())

    def latest(self, task_key: str) -> TaskRun | None:
        with self.lock:
            for task in reversed(self.tasks):
                if task.task_key == task_key:
                    return task
        return None

    def set_state(self, life_cycle_state: str, result_state: str | None = None, message: str = ""):
        with self.lock:
            self.life_cycle_state = life_cycle_state
            self.result_state = result_state
            self.state_message = message
            if life_cycle_state == "RUNNING" and not self.start_time:
                self.start_time = now_ms()
            if life_cycle_state == "RUNNING" and not self.execution.start_time:
                self.execution.start_time = now_ms()
            if life_cycle_state in TERMINAL:
                self.end_time = now_ms()
                self.execution.end_time = self.end_time
                self.execution.state = self._state_json()
            self.history.append((life_cycle_state, result_state))

    def add_execution(self, execution: Execution) -> None:
        """Reopen a terminated run for a repair: RUNNING again, without an end or a result."""
        with self.lock:
            self.executions.append(execution)
            self.tasks.extend(execution.tasks)
            self.cancel_requested = threading.Event()  # a cancel of an earlier pass is spent
            self.end_time = 0
            self.set_state("RUNNING")

    def is_done(self) -> bool:
        with self.lock:
            return self.life_cycle_state in TERMINAL

    def wait(self, timeout: float = 30) -> dict:
        """Block until the run is terminal (for tests that drive runs without the SDK)."""
        deadline = time.monotonic() + timeout
        while not self.is_done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {self.run_id} still {self.life_cycle_state}")
            time.sleep(0.02)
        return self.state

    def _state_json(self) -> dict:
        state = {"life_cycle_state": self.life_cycle_state, "state_message": self.state_message}
        if self.result_state:
            state["result_state"] = self.result_state
            state["user_cancelled_or_timedout"] = self.result_state in ("CANCELED", "TIMEDOUT")
        return state

    def as_json(self, include_history: bool = False) -> dict:
        """The body of `runs/get`. Like Databricks, `tasks` holds every attempt of every task
        (a repaired task appears once per attempt, each with its own run_id), the newest
        execution's first: only `repair_history` says which attempt belongs to which."""
        with self.lock:
            tasks = []
            for task in (t for e in reversed(self.executions) for t in e.tasks):
                entry = {
                    key: value
                    for key, value in task.spec.items()
                    if key not in ("depends_on",) or value
                }
                entry.update(
                    task_key=task.task_key,
                    run_id=task.run_id,
                    state=task.state_json(),
                    start_time=task.start_time,
                    end_time=task.end_time,
                    attempt_number=task.attempt_number,
                )
                tasks.append(entry)
            job_id = self.job_id if self.job_id is not None else self.run_id
            body = {
                "job_id": job_id,
                "run_id": self.run_id,
                "number_in_job": self.run_id,
                "original_attempt_run_id": self.run_id,
                "run_name": self.submitted.get("run_name") or self.submitted.get("name") or "Untitled",
                "run_type": self.run_type,
                "run_page_url": self.run_page_url,
                "creator_user_name": "emulator",
                "state": self._state_json(),
                "tasks": tasks,
                "start_time": self.start_time or self.submit_time,
                "end_time": self.end_time,
            }
            if self.submitted.get("timeout_seconds"):
                body["timeout_seconds"] = self.submitted["timeout_seconds"]
            if self.run_type == "JOB_RUN":
                body["job_parameters"] = [dict(p) for p in self.job_parameters]
                if self.submitted.get("job_clusters"):
                    body["job_clusters"] = self.submitted["job_clusters"]
            if include_history:
                body["repair_history"] = [e.history_json() for e in self.executions]
            return body
