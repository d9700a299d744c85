"""Jobs API job definitions (2.2, and 2.1 for older clients): jobs/create, jobs/reset,
jobs/get, jobs/list. Settings are refused (400) where Databricks would refuse them and stored
with Databricks' defaults filled in. A reset replaces them for future runs and repairs."""

import copy
import itertools
import re
import threading
from dataclasses import dataclass

from .errors import bad_request
from .pages import paged
from .runs import now_ms
from .task_specs import (api_version, check_task_count, non_negative_int, unique_keys,
                         validate_job_clusters, validate_tasks)

MAX_TAGS = 25
MAX_CONCURRENT_RUNS = 1000
PARAMETER_NAME = re.compile(r"[A-Za-z0-9_.-]+")  # "alphanumeric characters, _, - and ."


@dataclass
class Job:
    job_id: int
    settings: dict  # replaced as a whole by a reset, never changed in place
    created_time: int

    def as_json(self, with_tasks: bool = True) -> dict:
        settings = dict(self.settings)
        if not with_tasks:  # jobs/list without expand_tasks
            settings.pop("tasks", None)
            settings.pop("job_clusters", None)
        return {"job_id": self.job_id, "creator_user_name": "emulator",
                "run_as_user_name": "emulator", "created_time": self.created_time,
                "settings": settings}


class JobDefinitions:
    def __init__(self, *, clusters):
        self._clusters = clusters
        self._jobs: dict[int, Job] = {}
        # Job ids are not run ids: a test passing one where the other belongs fails loudly.
        self._ids = itertools.count(1001)
        self._lock = threading.Lock()

    def routes(self, router) -> None:
        for version in ("2.1", "2.2"):
            base = f"/api/{version}/jobs"
            router.add("POST", f"{base}/create", self.create)
            router.add("POST", f"{base}/reset", self.reset)
            router.add("GET", f"{base}/get", self.get)
            router.add("GET", f"{base}/list", self.list)
            router.add("POST", f"{base}/delete", self.delete)

    # -- endpoints -----------------------------------------------------------------------

    def create(self, request):
        settings = self._validated(request.json(), api_version(request))
        with self._lock:
            job_id = next(self._ids)
            self._jobs[job_id] = Job(job_id, settings, now_ms())
        return {"job_id": job_id}

    def reset(self, request):
        body = request.json()
        job = self.job(body.get("job_id"))
        if not isinstance(body.get("new_settings"), dict):
            raise bad_request("new_settings is required.")
        settings = self._validated(body["new_settings"], api_version(request))
        with self._lock:
            job.settings = settings
        return {}

    def get(self, request):
        return self.job(request.query.get("job_id")).as_json()

    def list(self, request):
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda job: job.job_id)
        name = request.query.get("name")
        if name is not None:  # "exact (case insensitive) job name"
            jobs = [job for job in jobs if job.settings["name"].lower() == name.lower()]
        expand = request.query.get("expand_tasks", "").lower() == "true"
        return paged([job.as_json(with_tasks=expand) for job in jobs], request.query, "jobs", 100)

    def delete(self, request):
        job = self.job(request.json().get("job_id"))
        with self._lock:
            del self._jobs[job.job_id]
        return {}

    # -- what job_runs.py uses -----------------------------------------------------------

    def job(self, raw_id) -> Job:
        try:
            job_id = int(raw_id)
        except (TypeError, ValueError):
            raise bad_request(f"Invalid job_id: {raw_id!r}")
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            # Databricks' answer; on jobs/get the SDK maps it to ResourceDoesNotExist.
            raise bad_request(f"Job {job_id} does not exist.")
        return job

    # -- validation ----------------------------------------------------------------------

    def _validated(self, settings: dict, version: str) -> dict:
        """A copy of `settings` with defaults filled in, or a 400 for what Databricks refuses."""
        settings = copy.deepcopy(settings)
        settings.setdefault("name", "Untitled")
        if not isinstance(settings["name"], str):
            raise bad_request("name must be a string.")
        tasks = settings.get("tasks")
        check_task_count(tasks, version)
        job_clusters = validate_job_clusters(settings.get("job_clusters"))
        environments = _environments(settings.get("environments"))
        validate_tasks(tasks, environments=environments, clusters=self._clusters,
                       job_clusters=job_clusters)
        for task in tasks:
            task.setdefault("run_if", "ALL_SUCCESS")
        _validate_parameters(settings.get("parameters"))
        settings.setdefault("max_concurrent_runs", 1)
        runs = settings["max_concurrent_runs"]
        if not isinstance(runs, int) or not 0 <= runs <= MAX_CONCURRENT_RUNS:
            raise bad_request(f"max_concurrent_runs must be between 0 and {MAX_CONCURRENT_RUNS}.")
        non_negative_int(settings, "timeout_seconds")
        settings.setdefault("timeout_seconds", 0)
        _validate_tags(settings.get("tags"))
        if version == "2.2":  # 2.2 queues by default; 2.1 skips a run over the limit
            settings.setdefault("queue", {"enabled": True})
        queue = settings.get("queue")
        if queue is not None and not (isinstance(queue, dict) and isinstance(queue.get("enabled"), bool)):
            raise bad_request("queue must be {\"enabled\": true|false}.")
        settings.setdefault("format", "MULTI_TASK")
        return settings


def _environments(environments) -> list:
    if environments is None:
        return []
    if not isinstance(environments, list):
        raise bad_request("environments must be a list.")
    unique_keys(environments, "environment_key", "environment")
    return environments


def _validate_parameters(parameters) -> None:
    if parameters is None:
        return
    if not isinstance(parameters, list):
        raise bad_request("parameters must be a list of {name, default}.")
    names = set()
    for parameter in parameters:
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if not isinstance(name, str) or not PARAMETER_NAME.fullmatch(name):
            raise bad_request(
                f"Job parameter name {name!r} may only contain alphanumeric characters, _, - and ."
            )
        if name in names:
            raise bad_request(f"Duplicate job parameter {name}.")
        names.add(name)
        if not isinstance(parameter.get("default"), str):
            raise bad_request(f"Job parameter {name} needs a default (a string).")


def _validate_tags(tags) -> None:
    if tags is None:
        return
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise bad_request("tags must map names to strings.")
    if len(tags) > MAX_TAGS:
        raise bad_request(f"A job can have at most {MAX_TAGS} tags.")
