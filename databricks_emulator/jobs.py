"""Jobs API (2.2, and 2.1 for older clients): runs/submit, runs/get, runs/get-output,
runs/cancel. Submit validates the request the way Databricks would reject it (400) and
starts the run in a background thread."""

import itertools
import threading
from pathlib import Path

from .errors import bad_request
from .executor import Executor
from .runs import Run, TaskRun

TASK_KINDS = ("spark_python_task", "python_wheel_task")
MAX_LOGS = 5 * 1024 * 1024  # get-output returns the last 5 MB of a task's output


class Jobs:
    def __init__(self, *, runs: dict, runs_dir: Path, executor: Executor, clusters, faults, host):
        self.runs = runs
        self._runs_dir = runs_dir
        self._executor = executor
        self._clusters = clusters
        self._faults = faults
        self._host = host  # callable: the URL is known only once the server is bound
        self._ids = itertools.count(1)
        self._idempotency: dict[str, int] = {}
        self._tasks: dict[int, tuple[Run, TaskRun]] = {}
        self._lock = threading.Lock()

    def routes(self, router) -> None:
        for version in ("2.1", "2.2"):
            base = f"/api/{version}/jobs/runs"
            router.add("POST", f"{base}/submit", self.submit)
            router.add("GET", f"{base}/get", self.get)
            router.add("GET", f"{base}/get-output", self.get_output)
            router.add("POST", f"{base}/cancel", self.cancel)

    # -- endpoints -----------------------------------------------------------------------

    def submit(self, request):
        body = request.json()
        ordered = self._validate(body)
        with self._lock:
            token = body.get("idempotency_token")
            if token is not None and token in self._idempotency:
                # Databricks returns the existing run for a repeated token: a retried
                # submit does not start a second run.
                return {"run_id": self._idempotency[token]}
            run_id = next(self._ids)
            run_dir = self._runs_dir / str(run_id)
            tasks = []
            for spec in ordered:
                task = TaskRun(spec["task_key"], next(self._ids), spec, run_dir / spec["task_key"])
                tasks.append(task)
            run = Run(
                run_id=run_id,
                submitted=body,
                tasks=tasks,
                dir=run_dir,
                run_page_url=f"{self._host()}/?o=0#job/{run_id}/run/{run_id}",
                fault=self._faults.take_run_fault(),
            )
            self.runs[run_id] = run
            for task in tasks:
                self._tasks[task.run_id] = (run, task)
            if token is not None:
                self._idempotency[token] = run_id
        run.thread = threading.Thread(
            target=self._executor.execute, args=(run,), name=f"emulator-run-{run_id}", daemon=True
        )
        run.thread.start()
        return {"run_id": run_id}

    def get(self, request):
        return self._run(request.query.get("run_id")).as_json()

    def get_output(self, request):
        run_id = _run_id(request.query.get("run_id"))
        with self._lock:
            found = self._tasks.get(run_id)
        if found is None:
            run = self._run(run_id)
            if len(run.tasks) != 1:
                raise bad_request(
                    "Retrieving the output of runs with multiple tasks is not supported. "
                    "Please retrieve the output of each individual task run instead."
                )
            found = (run, run.tasks[0])
        run, task = found
        stdout = task.stdout()
        output = {"metadata": run.as_json(), "logs": stdout[-MAX_LOGS:]}
        output["logs_truncated"] = len(stdout) > MAX_LOGS
        if task.result_state not in (None, "SUCCESS"):
            output["error"] = task.state_message
            output["error_trace"] = task.stderr()[-MAX_LOGS:]
        return output

    def cancel(self, request):
        run = self._run(request.json().get("run_id"))
        run.cancel_requested.set()  # the run's thread kills the process and ends CANCELED
        return {}

    # -- helpers -------------------------------------------------------------------------

    def _run(self, raw_id) -> Run:
        run_id = _run_id(raw_id)
        with self._lock:
            run = self.runs.get(run_id)
        if run is None:
            # Databricks' answer; the SDK maps exactly this message to ResourceDoesNotExist.
            raise bad_request(f"Run {run_id} does not exist.")
        return run

    def _validate(self, body: dict) -> list[dict]:
        """Reject what Databricks or the emulator cannot run; return tasks in run order."""
        if body.get("job_clusters"):
            raise bad_request("Shared job cluster feature is not supported in runs/submit API.")
        tasks = body.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            raise bad_request("tasks is required and must be a non-empty list.")
        _non_negative_int(body, "timeout_seconds")
        environments = {e.get("environment_key") for e in body.get("environments") or []}
        keys = set()
        for task in tasks:
            key = task.get("task_key") if isinstance(task, dict) else None
            if not isinstance(key, str) or not key:
                raise bad_request("Every task needs a task_key.")
            if key in keys:
                raise bad_request(f"Duplicate task_key {key}.")
            keys.add(key)
            self._validate_task(task, environments)
        return _in_dependency_order(tasks)

    def _validate_task(self, task: dict, environments: set) -> None:
        key = task["task_key"]
        kinds = [kind for kind in TASK_KINDS if kind in task]
        if len(kinds) != 1:
            raise bad_request(
                f"Task {key}: the emulator runs exactly one of {', '.join(TASK_KINDS)} per task."
            )
        if "spark_python_task" in task:
            python_task = task["spark_python_task"]
            if not isinstance(python_task.get("python_file"), str):
                raise bad_request(f"Task {key}: spark_python_task.python_file is required.")
            _strings(python_task.get("parameters", []), f"Task {key}: parameters")
        else:
            wheel_task = task["python_wheel_task"]
            for field in ("package_name", "entry_point"):
                if not isinstance(wheel_task.get(field), str) or not wheel_task[field]:
                    raise bad_request(f"Task {key}: python_wheel_task.{field} is required.")
            _strings(wheel_task.get("parameters", []), f"Task {key}: parameters")
        _non_negative_int(task, "timeout_seconds")
        if task.get("run_if", "ALL_SUCCESS") != "ALL_SUCCESS":
            raise bad_request(f"Task {key}: the emulator supports only run_if ALL_SUCCESS.")

        compute = [f for f in ("new_cluster", "existing_cluster_id", "environment_key", "job_cluster_key") if task.get(f)]
        if "job_cluster_key" in compute:
            raise bad_request("Shared job cluster feature is not supported in runs/submit API.")
        if len(compute) != 1:
            raise bad_request(
                f"Task {key}: exactly one of new_cluster, existing_cluster_id or environment_key is required."
            )
        if "new_cluster" in task:
            _validate_new_cluster(key, task["new_cluster"])
        elif "existing_cluster_id" in task:
            if task["existing_cluster_id"] not in self._clusters:
                raise bad_request(f"Cluster {task['existing_cluster_id']} does not exist")
        elif task["environment_key"] not in environments:
            raise bad_request(f"Task {key}: environment_key {task['environment_key']} is not in environments.")


def _validate_new_cluster(key: str, cluster: dict) -> None:
    if not cluster.get("spark_version"):
        raise bad_request(f"Task {key}: new_cluster.spark_version is required.")
    if not (cluster.get("node_type_id") or cluster.get("instance_pool_id")):
        raise bad_request(f"Task {key}: new_cluster needs node_type_id or instance_pool_id.")
    autoscale = cluster.get("autoscale")
    if autoscale:
        low, high = autoscale.get("min_workers"), autoscale.get("max_workers")
        if not (isinstance(low, int) and isinstance(high, int) and 0 <= low <= high):
            raise bad_request(f"Task {key}: autoscale needs 0 <= min_workers <= max_workers.")
    elif not isinstance(cluster.get("num_workers", 0), int) or cluster.get("num_workers", 0) < 0:
        raise bad_request(f"Task {key}: num_workers must be a non-negative integer.")
    env_vars = cluster.get("spark_env_vars") or {}
    if not all(isinstance(v, str) for v in env_vars.values()):
        raise bad_request(f"Task {key}: spark_env_vars values must be strings.")


def _in_dependency_order(tasks: list[dict]) -> list[dict]:
    """Tasks sorted so each comes after its depends_on (stable); unknown keys or cycles -> 400."""
    keys = {t["task_key"] for t in tasks}
    upstream = {}
    for task in tasks:
        deps = [d.get("task_key") for d in task.get("depends_on") or []]
        for dep in deps:
            if dep not in keys:
                raise bad_request(f"Task {task['task_key']} depends on unknown task {dep}.")
        upstream[task["task_key"]] = set(deps)
    ordered, done = [], set()
    while len(ordered) < len(tasks):
        ready = [t for t in tasks if t["task_key"] not in done and upstream[t["task_key"]] <= done]
        if not ready:
            raise bad_request("The tasks' depends_on form a cycle.")
        for task in ready:
            ordered.append(task)
            done.add(task["task_key"])
    return ordered


def _run_id(raw) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise bad_request(f"Invalid run_id: {raw!r}")


def _strings(values, what: str) -> None:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise bad_request(f"{what} must be a list of strings.")


def _non_negative_int(container: dict, field: str) -> None:
    value = container.get(field)
    if value is not None and (not isinstance(value, int) or value < 0):
        raise bad_request(f"{field} must be a non-negative integer.")
