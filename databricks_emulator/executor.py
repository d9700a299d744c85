"""Executes a run in a background thread: each task is a real subprocess in its own
process group, so cancel, timeout and shutdown kill everything it started."""

import json
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from .libraries import TaskSetupError, install_wheels, wheel_paths
from .paths import task_file_local
from .runs import Run, TaskRun, now_ms

log = logging.getLogger("databricks_emulator")
_LAUNCHER = (Path(__file__).parent / "wheel_launcher.py").read_text()
KILL_GRACE_SECONDS = 3
STDERR_TAIL_LINES = 20


class Executor:
    def __init__(self, *, dbfs_root, volumes_root, python, env, clusters,
                 pending_seconds, terminating_seconds):
        self.dbfs_root = dbfs_root
        self.volumes_root = volumes_root
        self.python = python
        self.env = env
        self.clusters = clusters
        self.pending_seconds = pending_seconds
        self.terminating_seconds = terminating_seconds

    # -- the run's life cycle ------------------------------------------------------------

    def execute(self, run: Run) -> None:
        """PENDING -> RUNNING -> TERMINATING -> TERMINATED (or INTERNAL_ERROR)."""
        try:
            self._execute(run)
        except Exception as e:
            # Never leave a run RUNNING forever because the emulator itself broke.
            log.exception("run %s failed inside the emulator", run.run_id)
            stop_run_processes(run)
            run.set_state("INTERNAL_ERROR", "FAILED", f"Emulator error: {type(e).__name__}: {e}")

    def _execute(self, run: Run) -> None:
        if run.cancel_requested.wait(self.pending_seconds):
            self._finish_tasks(run, "CANCELED", "Run cancelled before it started.")
            run.set_state("TERMINATED", "CANCELED", "Run cancelled before it started.")
            return
        run.set_state("RUNNING")
        deadline = _deadline(run.submitted.get("timeout_seconds"))
        fault = run.fault
        if fault is not None and fault.kind == "fail":
            self._finish_tasks(run, "FAILED", fault.message)
            outcome = ("FAILED", fault.message)
        elif fault is not None and fault.kind == "hang":
            outcome = self._hang(run, deadline)
            self._finish_tasks(run, outcome[0], outcome[1])
        else:
            outcome = self._run_tasks(run, deadline)
        result_state, message = outcome
        if result_state == "INTERNAL_ERROR":
            run.set_state("INTERNAL_ERROR", "FAILED", message)
            return
        run.set_state("TERMINATING", None, message)
        time.sleep(self.terminating_seconds)
        run.set_state("TERMINATED", result_state, message)

    def _hang(self, run: Run, deadline: float | None) -> tuple[str, str]:
        while not run.cancel_requested.wait(0.05):
            if deadline is not None and time.monotonic() > deadline:
                return "TIMEDOUT", "Run timed out."
        return "CANCELED", "Run cancelled."

    def _run_tasks(self, run: Run, run_deadline: float | None) -> tuple[str, str]:
        """Tasks run one after another in dependency order (submit validated the graph)."""
        outcome = ("SUCCESS", "")
        results: dict[str, str] = {}
        for task in run.tasks:
            upstream = [d["task_key"] for d in task.spec.get("depends_on") or []]
            if run.cancel_requested.is_set():
                self._finish(task, "TERMINATED", "CANCELED", "Run cancelled.")
            elif any(results.get(key) != "SUCCESS" for key in upstream):
                self._finish(task, "TERMINATED", "UPSTREAM_FAILED", "An upstream task failed.")
            else:
                self._run_task(run, task, run_deadline)
            results[task.task_key] = task.result_state
            if task.result_state != "SUCCESS" and outcome[0] == "SUCCESS":
                outcome = (task.result_state, task.state_message)
                if task.life_cycle_state == "INTERNAL_ERROR":
                    outcome = ("INTERNAL_ERROR", task.state_message)
        return outcome

    def _run_task(self, run: Run, task: TaskRun, run_deadline: float | None) -> None:
        task.dir.mkdir(parents=True, exist_ok=True)
        with run.lock:
            task.life_cycle_state = "RUNNING"
            task.start_time = now_ms()
        try:
            command, env = self._prepare(run, task)
        except TaskSetupError as e:
            self._finish(task, "INTERNAL_ERROR", "FAILED", str(e))
            return
        task.command = command
        deadline = _earliest(run_deadline, _deadline(task.spec.get("timeout_seconds")))
        with open(task.stdout_path, "wb") as out, open(task.stderr_path, "wb") as err:
            try:
                process = subprocess.Popen(
                    command, env=env, cwd=task.dir, stdout=out, stderr=err,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )
            except OSError as e:
                self._finish(task, "INTERNAL_ERROR", "FAILED", f"Cannot start the task: {e}")
                return
            task.pid = process.pid
            ended = self._wait(process, run, deadline)
        task.exit_code = process.returncode
        if ended == "cancelled":
            self._finish(task, "TERMINATED", "CANCELED", "Run cancelled.")
        elif ended == "timedout":
            self._finish(task, "TERMINATED", "TIMEDOUT", "Run timed out.")
        elif process.returncode == 0:
            self._finish(task, "TERMINATED", "SUCCESS", "")
        else:
            self._finish(task, "TERMINATED", "FAILED", _failure_message(task))

    def _wait(self, process: subprocess.Popen, run: Run, deadline: float | None) -> str:
        while True:
            try:
                process.wait(timeout=0.05)
                _kill_group(process.pid, signal.SIGKILL)  # leftovers die with the "cluster"
                return "exited"
            except subprocess.TimeoutExpired:
                pass
            if run.cancel_requested.is_set():
                _stop(process)
                return "cancelled"
            if deadline is not None and time.monotonic() > deadline:
                _stop(process)
                return "timedout"

    # -- what to start, with which environment -------------------------------------------

    def _prepare(self, run: Run, task: TaskRun) -> tuple[list[str], dict]:
        spec = task.spec
        environments = {
            e.get("environment_key"): e for e in run.submitted.get("environments") or []
        }
        wheels, task.ignored_libraries = wheel_paths(spec, environments)
        lib_dirs = install_wheels(wheels, self.dbfs_root, self.volumes_root, task.dir / "libs")

        if "spark_python_task" in spec:
            python_task = spec["spark_python_task"]
            try:
                script = task_file_local(self.dbfs_root, self.volumes_root, python_task["python_file"])
            except Exception as e:
                raise TaskSetupError(f"Cannot run python_file: {e}")
            if not script.is_file():
                raise TaskSetupError(f"python_file {python_task['python_file']} does not exist.")
            command = [self.python, str(script), *python_task.get("parameters", [])]
        else:
            wheel_task = spec["python_wheel_task"]
            parameters = list(wheel_task.get("parameters") or [])
            parameters += [f"--{k}={v}" for k, v in (wheel_task.get("named_parameters") or {}).items()]
            command = [self.python, "-c", _LAUNCHER, wheel_task["package_name"],
                       wheel_task["entry_point"], *parameters]

        env = dict(os.environ if self.env is None else self.env)
        version, spark_env_vars, spark_conf = self._compute(run, spec, environments)
        env.update(spark_env_vars)
        env["DATABRICKS_RUNTIME_VERSION"] = version
        # No Spark here: task code that builds its own session can apply the cluster's conf.
        env["DATABRICKS_EMULATOR_SPARK_CONF"] = json.dumps(spark_conf)
        paths = [str(d) for d in lib_dirs] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        if paths:
            env["PYTHONPATH"] = os.pathsep.join(paths)
        return command, env

    def _compute(self, run: Run, spec: dict, environments: dict) -> tuple[str, dict, dict]:
        """(DATABRICKS_RUNTIME_VERSION, spark_env_vars, spark_conf) of the task's compute."""
        if "new_cluster" in spec:
            cluster = spec["new_cluster"]
        elif "existing_cluster_id" in spec:
            cluster = self.clusters[spec["existing_cluster_id"]]
        else:
            client = (environments[spec["environment_key"]].get("spec") or {}).get("client") or "1"
            return f"client.{client}", {}, {}
        return cluster["spark_version"], cluster.get("spark_env_vars") or {}, cluster.get("spark_conf") or {}

    def _finish_tasks(self, run: Run, result_state: str, message: str) -> None:
        for task in run.tasks:
            self._finish(task, "TERMINATED", result_state, message)

    @staticmethod
    def _finish(task: TaskRun, life_cycle_state: str, result_state: str, message: str) -> None:
        task.life_cycle_state = life_cycle_state
        task.result_state = result_state
        task.state_message = message
        task.end_time = now_ms()


def stop_run_processes(run: Run) -> None:
    """Kill the process groups of a run's tasks (shutdown path; the run thread reaps them)."""
    for task in run.tasks:
        if task.pid is not None and task.exit_code is None:
            _kill_group(task.pid, signal.SIGKILL)


def _stop(process: subprocess.Popen) -> None:
    _kill_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=KILL_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    _kill_group(process.pid, signal.SIGKILL)
    process.wait()


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _failure_message(task: TaskRun) -> str:
    tail = "\n".join(task.stderr().rstrip().splitlines()[-STDERR_TAIL_LINES:])[-4000:]
    return f"Task {task.task_key} failed with exit code {task.exit_code}:\n{tail}"


def _deadline(timeout_seconds) -> float | None:
    return time.monotonic() + timeout_seconds if timeout_seconds else None


def _earliest(*deadlines):
    present = [d for d in deadlines if d is not None]
    return min(present) if present else None
