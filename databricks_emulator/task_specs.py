"""Task specs as runs/submit and jobs/create|reset accept them: what Databricks (or the
emulator, which runs only Python tasks) refuses with a 400, and the dependency graph."""

from .errors import bad_request

TASK_KINDS = ("spark_python_task", "python_wheel_task")
RUN_IF = ("ALL_SUCCESS", "ALL_DONE", "NONE_FAILED", "AT_LEAST_ONE_SUCCESS", "ALL_FAILED",
          "AT_LEAST_ONE_FAILED")
COMPUTE_FIELDS = ("new_cluster", "existing_cluster_id", "job_cluster_key", "environment_key")
# Databricks' own words: a one-time run cannot share a job cluster.
SHARED_CLUSTER_IN_SUBMIT = "Shared job cluster feature is not supported in runs/submit API."
MAX_TASKS = 1000
MAX_TASKS_BEFORE_2_2 = 100  # Jobs API 2.1 cannot page through more


def check_task_count(tasks, api_version: str) -> None:
    """Refuse more tasks than a job (or a one-time run) may have through this API version."""
    count = len(tasks) if isinstance(tasks, list) else 0
    if count > MAX_TASKS:
        raise bad_request(
            f"A job can have at most {MAX_TASKS} tasks. Your resource has {count} tasks")
    if count > MAX_TASKS_BEFORE_2_2 and api_version != "2.2":
        raise bad_request(  # Databricks' words
            f"Resources with more than {MAX_TASKS_BEFORE_2_2} tasks can only be handled by API 2.2 "
            f"and above. Your resource has {count} tasks")


def api_version(request) -> str:
    """'2.2' for /api/2.2/jobs/..., '2.1' for /api/2.1/jobs/...."""
    return request.path.split("/")[2]


def validate_tasks(tasks, *, environments, clusters, job_clusters: dict | None) -> list[dict]:
    """Refuse bad tasks; return them so each comes after its depends_on.

    environments: the body's `environments` list. clusters: the registered all-purpose
    clusters. job_clusters: {job_cluster_key: spec} of a job, or None for runs/submit, where
    `job_cluster_key` is refused.
    """
    if not isinstance(tasks, list) or not tasks:
        raise bad_request("tasks is required and must be a non-empty list.")
    environment_keys = {e.get("environment_key") for e in environments or [] if isinstance(e, dict)}
    unique_keys(tasks, "task_key", "task")
    for task in tasks:
        _validate_task(task, environment_keys, clusters, job_clusters)
    return in_dependency_order(tasks)


def unique_keys(entries: list, field: str, noun: str) -> list[str]:
    """The `field` of each dict in `entries`, refusing a missing or repeated one as Databricks
    does ("Every task needs a task_key.", "Duplicate task_key x.")."""
    keys: list[str] = []
    for entry in entries:
        key = entry.get(field) if isinstance(entry, dict) else None
        if not isinstance(key, str) or not key:
            article = "an" if field[0] in "aeiou" else "a"
            raise bad_request(f"Every {noun} needs {article} {field}.")
        if key in keys:
            raise bad_request(f"Duplicate {field} {key}.")
        keys.append(key)
    return keys


def validate_job_clusters(job_clusters) -> dict[str, dict]:
    """A job's `job_clusters` -> {job_cluster_key: entry}."""
    if job_clusters is None:
        return {}
    if not isinstance(job_clusters, list):
        raise bad_request("job_clusters must be a list.")
    by_key = dict(zip(unique_keys(job_clusters, "job_cluster_key", "job cluster"), job_clusters))
    for key, entry in by_key.items():
        if not isinstance(entry.get("new_cluster"), dict):
            raise bad_request(f"Job cluster {key}: new_cluster is required.")
        validate_new_cluster(f"Job cluster {key}", entry["new_cluster"])
    return by_key


def validate_new_cluster(what: str, cluster: dict) -> None:
    if not cluster.get("spark_version"):
        raise bad_request(f"{what}: new_cluster.spark_version is required.")
    if not (cluster.get("node_type_id") or cluster.get("instance_pool_id")):
        raise bad_request(f"{what}: new_cluster needs node_type_id or instance_pool_id.")
    autoscale = cluster.get("autoscale")
    if autoscale:
        low, high = autoscale.get("min_workers"), autoscale.get("max_workers")
        if not (isinstance(low, int) and isinstance(high, int) and 0 <= low <= high):
            raise bad_request(f"{what}: autoscale needs 0 <= min_workers <= max_workers.")
    elif not isinstance(cluster.get("num_workers", 0), int) or cluster.get("num_workers", 0) < 0:
        raise bad_request(f"{what}: num_workers must be a non-negative integer.")
    env_vars = cluster.get("spark_env_vars") or {}
    if not all(isinstance(v, str) for v in env_vars.values()):
        raise bad_request(f"{what}: spark_env_vars values must be strings.")


def in_dependency_order(tasks: list[dict]) -> list[dict]:
    """Tasks sorted so each comes after its depends_on (stable); unknown keys or cycles -> 400."""
    keys = {t["task_key"] for t in tasks}
    upstream = {}
    for task in tasks:
        deps = task.get("depends_on") or []
        if not isinstance(deps, list) or not all(isinstance(d, dict) for d in deps):
            raise bad_request(f"Task {task['task_key']}: depends_on must be a list of {{task_key}}.")
        for dep in deps:
            if dep.get("task_key") not in keys:
                raise bad_request(f"Task {task['task_key']} depends on unknown task {dep.get('task_key')}.")
        upstream[task["task_key"]] = {d["task_key"] for d in deps}
    ordered, done = [], set()
    while len(ordered) < len(tasks):
        ready = [t for t in tasks if t["task_key"] not in done and upstream[t["task_key"]] <= done]
        if not ready:
            raise bad_request("The tasks' depends_on form a cycle.")
        for task in ready:
            ordered.append(task)
            done.add(task["task_key"])
    return ordered


def with_dependents(tasks: list[dict], keys: set[str]) -> set[str]:
    """`keys` plus every task that depends on one of them, directly or not."""
    chosen = set(keys)
    grew = True
    while grew:
        grew = False
        for task in tasks:
            deps = {d["task_key"] for d in task.get("depends_on") or []}
            if task["task_key"] not in chosen and deps & chosen:
                chosen.add(task["task_key"])
                grew = True
    return chosen


def _validate_task(task: dict, environment_keys: set, clusters, job_clusters: dict | None) -> None:
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
        named = wheel_task.get("named_parameters") or {}
        if not isinstance(named, dict) or not all(isinstance(v, str) for v in named.values()):
            raise bad_request(f"Task {key}: named_parameters must map names to strings.")
    non_negative_int(task, "timeout_seconds")
    run_if = task.get("run_if", "ALL_SUCCESS")
    if run_if not in RUN_IF:
        raise bad_request(f"Task {key}: run_if {run_if!r} is not one of {', '.join(RUN_IF)}.")
    _validate_compute(task, environment_keys, clusters, job_clusters)


def _validate_compute(task: dict, environment_keys: set, clusters, job_clusters: dict | None) -> None:
    key = task["task_key"]
    compute = [f for f in COMPUTE_FIELDS if task.get(f)]
    if job_clusters is None:
        if "job_cluster_key" in compute:
            raise bad_request(SHARED_CLUSTER_IN_SUBMIT)
        allowed = "new_cluster, existing_cluster_id or environment_key"
    else:
        allowed = "new_cluster, existing_cluster_id, job_cluster_key or environment_key"
    if len(compute) != 1:
        raise bad_request(f"Task {key}: exactly one of {allowed} is required.")
    if "new_cluster" in compute:
        validate_new_cluster(f"Task {key}", task["new_cluster"])
    elif "existing_cluster_id" in compute:
        if task["existing_cluster_id"] not in clusters:
            raise bad_request(f"Cluster {task['existing_cluster_id']} does not exist")
    elif "job_cluster_key" in compute:
        if task["job_cluster_key"] not in job_clusters:
            raise bad_request(
                f"Task {key}: job_cluster_key {task['job_cluster_key']} is not defined in job_clusters."
            )
    elif task["environment_key"] not in environment_keys:
        raise bad_request(f"Task {key}: environment_key {task['environment_key']} is not in environments.")


def _strings(values, what: str) -> None:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise bad_request(f"{what} must be a list of strings.")


def non_negative_int(container: dict, field: str) -> None:
    value = container.get(field)
    if value is not None and (not isinstance(value, int) or value < 0):
        raise bad_request(f"{field} must be a non-negative integer.")
