"""Executes a run in a background thread: its tasks run in parallel (scheduler.py), each as a
real subprocess in its own process group, so cancel, timeout and shutdown kill everything it
started."""

import json
import logging
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from .compute import Capacity, ClusterStarts, cluster_of
from .libraries import TaskSetupError, check_requirements, install_wheels, task_libraries
from .paths import task_file_local
from .references import UnresolvedReference, reference_values, resolve
from .runs import Execution, Run, TaskRun, now_ms
from .scheduler import Scheduler

log = logging.getLogger("databricks_emulator")
_LAUNCHER = (Path(__file__).parent / "wheel_launcher.py").read_text()
KILL_GRACE_SECONDS = 3
WORKSPACE = "workspace"  # the one key of `task_runs`: the limit is the workspace's
# Databricks' words (a driver's limit of open notebook/REPL contexts), followed by the limit.
TOO_MANY_CONTEXTS = "Too many execution contexts are open right now.(Limit set currently to {})"
# The last line of a Python traceback: `ValueError: bad input`, `pkg.LoadError`, `SystemExit: 2`.
_EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Failure)(: .*)?")


class Executor:
    """dbfs_root: None when DBFS root access is disabled. contexts: execution contexts per
    cluster. task_runs: running task runs of the workspace (one key)."""

    def __init__(self, *, dbfs_root, volumes_root, python, env, clusters,
                 cluster_starts: ClusterStarts, contexts: Capacity, task_runs: Capacity,
                 pypi_reachable: bool, faults, pending_seconds, terminating_seconds):
        self.dbfs_root = dbfs_root
        self.volumes_root = volumes_root
        self.python = python
        self.env = env
        self.clusters = clusters
        self.cluster_starts = cluster_starts
        self.contexts = contexts
        self.task_runs = task_runs
        self.pypi_reachable = pypi_reachable
        self.faults = faults
        self.pending_seconds = pending_seconds
        self.terminating_seconds = terminating_seconds
        self.scheduler = Scheduler(self._run_task)

    # -- the run's life cycle ------------------------------------------------------------

    def execute(self, run: Run) -> None:
        """A new run: PENDING -> RUNNING -> TERMINATING -> TERMINATED (or INTERNAL_ERROR)."""
        self._guarded(run, self._execute)

    def execute_repair(self, run: Run) -> None:
        """The run's latest execution, a repair; the run is RUNNING again already."""
        self._guarded(run, self._execute_repair)

    def _guarded(self, run: Run, body) -> None:
        try:
            body(run)
        except Exception as e:
            # Never leave a run RUNNING forever because the emulator itself broke.
            log.exception("run %s failed inside the emulator", run.run_id)
            stop_run_processes(run)
            run.set_state("INTERNAL_ERROR", "FAILED", f"Emulator error: {type(e).__name__}: {e}")

    def _execute(self, run: Run) -> None:
        execution = run.execution
        if run.cancel_requested.wait(self.pending_seconds):
            _finish_tasks(execution, "CANCELED", "Run cancelled before it started.")
            run.set_state("TERMINATED", "CANCELED", "Run cancelled before it started.")
            return
        run.set_state("RUNNING")
        execution.deadline = _deadline(run.submitted.get("timeout_seconds"))
        fault = run.fault
        if fault is not None and fault.kind == "fail":
            _finish_tasks(execution, "FAILED", fault.message)
            self._end(run, ("FAILED", fault.message))
        elif fault is not None and fault.kind == "hang":
            outcome = self._hang(run, execution.deadline)
            _finish_tasks(execution, *outcome)
            self._end(run, outcome)
        else:
            self.scheduler.run(run, execution)
            self._end(run, run_outcome(run))

    def _execute_repair(self, run: Run) -> None:
        run.execution.deadline = _deadline(run.submitted.get("timeout_seconds"))
        self.scheduler.run(run, run.execution)
        self._end(run, run_outcome(run))

    def _end(self, run: Run, outcome: tuple[str, str]) -> None:
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

    # -- one task ------------------------------------------------------------------------

    def _run_task(self, run: Run, task: TaskRun, execution: Execution) -> None:
        """Wait (PENDING) for the workspace to have a task run free, then start the task's
        compute and its process; the scheduler calls this in a thread."""
        cancelled = run.cancel_requested.is_set
        if not self.task_runs.take_when_free(WORKSPACE, cancelled):
            task.finish("TERMINATED", "CANCELED", "Run cancelled.")
            return
        try:
            if self.cluster_starts.ready(run, task, execution, cancelled):
                self._start(run, task, execution)
            else:
                task.finish("TERMINATED", "CANCELED", "Run cancelled.")
        finally:
            self.task_runs.give_back(WORKSPACE)

    def _start(self, run: Run, task: TaskRun, execution: Execution) -> None:
        """On the task's started compute: set it up, then run its process."""
        task.dir.mkdir(parents=True, exist_ok=True)
        with run.lock:
            task.life_cycle_state = "RUNNING"
            task.start_time = now_ms()
        injected = self.faults.take_task_fault(task.task_key)
        if injected is not None:
            task.fail_workload(injected)  # it happens in the task's code, as far as anyone sees
            return
        try:
            command, env = self._prepare(run, task)
        except TaskSetupError as e:
            task.finish("INTERNAL_ERROR", "FAILED", str(e))
            return
        except UnresolvedReference as e:
            task.finish("TERMINATED", "FAILED", f"Task {task.task_key}: {e}")
            return
        # The process holds an execution context of its cluster from its start to its end.
        with self.contexts.holding(cluster_of(run, task, execution)) as opened:
            if not opened:
                task.finish("TERMINATED", "FAILED", TOO_MANY_CONTEXTS.format(self.contexts.limit))
                return
            self._run_process(run, task, execution, command, env)

    def _run_process(self, run: Run, task: TaskRun, execution: Execution, command: list[str],
                     env: dict) -> None:
        task.command = command
        cancelled = run.cancel_requested.is_set
        deadline = _earliest(execution.deadline, _deadline(task.spec.get("timeout_seconds")))
        with open(task.stdout_path, "wb") as out, open(task.stderr_path, "wb") as err:
            try:
                process = subprocess.Popen(
                    command, env=env, cwd=task.dir, stdout=out, stderr=err,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )
            except OSError as e:
                task.finish("INTERNAL_ERROR", "FAILED", f"Cannot start the task: {e}")
                return
            task.pid = process.pid
            ended = self._wait(process, cancelled, deadline)
        task.exit_code = process.returncode
        if ended == "cancelled":
            task.finish("TERMINATED", "CANCELED", "Run cancelled.")
        elif ended == "timedout":
            task.finish("TERMINATED", "TIMEDOUT", "Run timed out.")
        elif process.returncode == 0:
            task.finish("TERMINATED", "SUCCESS", "")
        else:
            task.fail_workload(_error(task))

    def _wait(self, process: subprocess.Popen, cancelled, deadline: float | None) -> str:
        while True:
            try:
                process.wait(timeout=0.05)
                _kill_group(process.pid, signal.SIGKILL)  # leftovers die with the "cluster"
                return "exited"
            except subprocess.TimeoutExpired:
                pass
            if cancelled():
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
        wheels, task.ignored_libraries = task_libraries(spec, environments, self.pypi_reachable)
        lib_dirs = install_wheels(wheels, self.dbfs_root, self.volumes_root, task.dir / "libs")
        if not self.pypi_reachable:
            check_requirements(wheels, lib_dirs)
        job_parameters, values = _references(run, task)

        if "spark_python_task" in spec:
            python_task = spec["spark_python_task"]
            try:
                script = task_file_local(self.dbfs_root, self.volumes_root, python_task["python_file"])
            except Exception as e:
                raise TaskSetupError(f"Cannot run python_file: {e}")
            if not script.is_file():
                raise TaskSetupError(f"python_file {python_task['python_file']} does not exist.")
            parameters = [resolve(p, values) for p in python_task.get("parameters", [])]
            command = [self.python, str(script), *parameters]
        else:
            wheel_task = spec["python_wheel_task"]
            parameters = [resolve(p, values) for p in wheel_task.get("parameters") or []]
            named = {k: resolve(v, values) for k, v in (wheel_task.get("named_parameters") or {}).items()}
            if named and run.run_type == "JOB_RUN":
                # Databricks pushes job parameters down into wheel tasks that take keyword
                # arguments; a job parameter wins over a task parameter of the same name.
                named.update(job_parameters)
            parameters += [f"--{k}={v}" for k, v in named.items()]
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
        if spec.get("new_cluster"):
            cluster = spec["new_cluster"]
        elif spec.get("job_cluster_key"):
            (cluster,) = [c["new_cluster"] for c in run.submitted.get("job_clusters") or []
                          if c["job_cluster_key"] == spec["job_cluster_key"]]
        elif spec.get("existing_cluster_id"):
            cluster = self.clusters[spec["existing_cluster_id"]]
        else:
            client = (environments[spec["environment_key"]].get("spec") or {}).get("client") or "1"
            return f"client.{client}", {}, {}
        return cluster["spark_version"], cluster.get("spark_env_vars") or {}, cluster.get("spark_conf") or {}


def run_outcome(run: Run) -> tuple[str, str]:
    """(result_state, message) of a run from the latest attempt of each task: SUCCESS when all
    succeeded or were excluded, else the result of the first task that failed by itself
    (rather than because of an upstream one)."""
    if run.cancel_requested.is_set():
        return "CANCELED", "Run cancelled."
    tasks = run.latest_tasks()
    for task in tasks:
        if task.life_cycle_state == "INTERNAL_ERROR":
            return "INTERNAL_ERROR", task.state_message
    problems = [t for t in tasks if t.result_state not in ("SUCCESS", "EXCLUDED")]
    if not problems:
        return "SUCCESS", ""
    cause = next((t for t in problems if not t.result_state.startswith("UPSTREAM_")), problems[0])
    result = cause.result_state if cause.result_state in ("TIMEDOUT", "CANCELED") else "FAILED"
    return result, cause.state_message


def _references(run: Run, task: TaskRun) -> tuple[dict, dict]:
    """(job parameter values, every dynamic value reference) for a task starting now."""
    base = dict(
        job_id=run.job_id if run.job_id is not None else run.run_id,
        job_name=run.submitted.get("name") or run.submitted.get("run_name") or "Untitled",
        job_run_id=run.run_id, repair_count=len(run.executions) - 1,
        job_start_ms=run.start_time or now_ms(), task_key=task.task_key,
        task_run_id=task.run_id, task_start_ms=task.start_time or now_ms(),
    )
    without_parameters = reference_values(parameters={}, **base)
    # A job parameter's value may itself hold references ({{job.id}}, {{job.start_time...}}).
    parameters = {p["name"]: resolve(p["value"], without_parameters) for p in run.job_parameters}
    return parameters, reference_values(parameters=parameters, **base)


def _finish_tasks(execution: Execution, result_state: str, message: str) -> None:
    for task in execution.tasks:
        task.finish("TERMINATED", result_state, message)


def stop_run_processes(run: Run) -> None:
    """Kill the process groups of a run's tasks (shutdown path; the task threads reap them)."""
    for task in list(run.tasks):
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


def _error(task: TaskRun) -> str:
    """runs/get-output's `error` of a failed process: its last exception line, else the last
    line it wrote to stderr, else its exit code."""
    lines = [line.strip() for line in task.stderr().splitlines() if line.strip()]
    exceptions = [line for line in lines if _EXCEPTION_LINE.fullmatch(line)]
    if exceptions or lines:
        return (exceptions or lines)[-1]
    return f"Task {task.task_key} failed with exit code {task.exit_code}"


def _deadline(timeout_seconds) -> float | None:
    return time.monotonic() + timeout_seconds if timeout_seconds else None


def _earliest(*deadlines):
    present = [d for d in deadlines if d is not None]
    return min(present) if present else None
