"""Run records: the state a `runs/get` reports, kept consistent under a lock."""

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

TERMINAL = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class TaskRun:
    """One task of a run: its spec, its process and where its output went."""

    task_key: str
    run_id: int
    spec: dict
    dir: Path
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = ""
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

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def state_json(self) -> dict:
        state = {"life_cycle_state": self.life_cycle_state, "state_message": self.state_message}
        if self.result_state:
            state["result_state"] = self.result_state
        return state


@dataclass
class Run:
    """A submitted run. `history` lists every (life_cycle_state, result_state) it went through."""

    run_id: int
    submitted: dict
    tasks: list[TaskRun]
    dir: Path
    run_page_url: str
    fault: object = None
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

    @property
    def state(self) -> dict:
        with self.lock:
            return self._state_json()

    @property
    def task(self) -> TaskRun:
        """The only task of a single-task run (the usual Pipes case)."""
        (task,) = self.tasks
        return task

    def set_state(self, life_cycle_state: str, result_state: str | None = None, message: str = ""):
        with self.lock:
            self.life_cycle_state = life_cycle_state
            self.result_state = result_state
            self.state_message = message
            if life_cycle_state == "RUNNING" and not self.start_time:
                self.start_time = now_ms()
            if life_cycle_state in TERMINAL:
                self.end_time = now_ms()
            self.history.append((life_cycle_state, result_state))

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

    def as_json(self) -> dict:
        """The body of `runs/get`."""
        with self.lock:
            tasks = []
            for task in self.tasks:
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
                    attempt_number=0,
                )
                tasks.append(entry)
            body = {
                "job_id": self.run_id,
                "run_id": self.run_id,
                "number_in_job": self.run_id,
                "run_name": self.submitted.get("run_name") or "Untitled",
                "run_type": "SUBMIT_RUN",
                "run_page_url": self.run_page_url,
                "creator_user_name": "emulator",
                "state": self._state_json(),
                "tasks": tasks,
                "start_time": self.start_time or self.submit_time,
                "end_time": self.end_time,
            }
            if self.submitted.get("timeout_seconds"):
                body["timeout_seconds"] = self.submitted["timeout_seconds"]
            return body
