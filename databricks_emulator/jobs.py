"""Jobs API runs endpoints (2.2, and 2.1 for older clients): runs/submit, runs/get, runs/list,
runs/get-output, runs/cancel. Submit validates the request the way Databricks would reject it
(400) and starts the run in a background thread. Job definitions are in job_definitions.py,
run-now and repair in job_runs.py."""

import threading
from pathlib import Path

from .errors import bad_request
from .pages import paged
from .executor import Executor
from .run_store import RunStore, parse_run_id
from .runs import Run, TaskRun
from .task_specs import (SHARED_CLUSTER_IN_SUBMIT, api_version, check_task_count,
                         non_negative_int, validate_tasks)

MAX_LOGS = 5 * 1024 * 1024  # get-output returns the last 5 MB of a task's output


class Jobs:
    def __init__(self, *, store: RunStore, runs_dir: Path, executor: Executor, clusters, faults, host):
        self.store = store
        self._runs_dir = runs_dir
        self._executor = executor
        self._clusters = clusters
        self._faults = faults
        self._host = host  # callable: the URL is known only once the server is bound
        self._idempotency: dict[str, int] = {}

    @property
    def runs(self) -> dict:
        return self.store.runs

    def routes(self, router) -> None:
        for version in ("2.1", "2.2"):
            base = f"/api/{version}/jobs/runs"
            router.add("POST", f"{base}/submit", self.submit)
            router.add("GET", f"{base}/get", self.get)
            router.add("GET", f"{base}/get-output", self.get_output)
            router.add("POST", f"{base}/cancel", self.cancel)
            router.add("GET", f"{base}/list", self.list_runs)

    # -- endpoints -----------------------------------------------------------------------

    def submit(self, request):
        body = request.json()
        check_task_count(body.get("tasks"), api_version(request))
        ordered = self._validate(body)
        with self.store.lock:
            token = body.get("idempotency_token")
            if token is not None and token in self._idempotency:
                # Databricks returns the existing run for a repeated token: a retried
                # submit does not start a second run.
                return {"run_id": self._idempotency[token]}
            run_id = self.store.new_id()
            run_dir = self._runs_dir / str(run_id)
            tasks = [TaskRun(spec["task_key"], self.store.new_id(), spec, run_dir / spec["task_key"])
                     for spec in ordered]
            run = Run(
                run_id=run_id,
                submitted=body,
                tasks=tasks,
                dir=run_dir,
                run_page_url=f"{self._host()}/?o=0#job/{run_id}/run/{run_id}",
                fault=self._faults.take_run_fault(),
            )
            self.store.add(run)
            if token is not None:
                self._idempotency[token] = run_id
        self.start(run, self._executor.execute)
        return {"run_id": run_id}

    def get(self, request):
        include_history = request.query.get("include_history", "").lower() == "true"
        return self.store.run(request.query.get("run_id")).as_json(include_history)

    def get_output(self, request):
        run_id = parse_run_id(request.query.get("run_id"))
        found = self.store.task(run_id)
        if found is None:
            run = self.store.run(run_id)
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
            output["error"] = task.error or task.state_message
            output["error_trace"] = task.stderr()[-MAX_LOGS:]
        return output

    def list_runs(self, request):
        """Runs, newest first: of one job (`job_id`), of one type (`run_type`), still going
        (`active_only`) or started since `start_time_from` (ms)."""
        query = request.query
        with self.store.lock:
            runs = sorted(self.store.runs.values(), key=lambda run: run.run_id, reverse=True)
        if query.get("job_id"):
            runs = [run for run in runs if str(run.job_id) == query["job_id"]]
        if query.get("run_type"):
            runs = [run for run in runs if run.run_type == query["run_type"]]
        if query.get("active_only", "").lower() == "true":
            runs = [run for run in runs if not run.is_done()]
        if query.get("start_time_from"):
            since = int(query["start_time_from"])
            runs = [run for run in runs if (run.start_time or run.submit_time) >= since]
        expand = query.get("expand_tasks", "").lower() == "true"
        bodies = []
        for run in runs:
            body = run.as_json()
            if not expand:
                body.pop("tasks")
            bodies.append(body)
        return paged(bodies, query, "runs", 25)

    def cancel(self, request):
        run = self.store.run(request.json().get("run_id"))
        # The run's thread kills running processes and ends every task that has not ended.
        run.cancel_requested.set()
        return {}

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def start(run: Run, target) -> None:
        """Run `target(run)` (a new run, or a repair) in the run's background thread."""
        run.thread = threading.Thread(
            target=target, args=(run,), name=f"emulator-run-{run.run_id}", daemon=True
        )
        run.thread.start()

    def _validate(self, body: dict) -> list[dict]:
        """Reject what Databricks or the emulator cannot run; return tasks in run order."""
        if body.get("job_clusters"):
            raise bad_request(SHARED_CLUSTER_IN_SUBMIT)
        non_negative_int(body, "timeout_seconds")
        return validate_tasks(body.get("tasks"), environments=body.get("environments"),
                              clusters=self._clusters, job_clusters=None)
