"""Runs of defined jobs: jobs/run-now, jobs/runs/repair and jobs/runs/cancel-all (2.2 and
2.1). A run holds the job's settings as they were when it started; a repair reruns tasks
inside the same run with the job's current settings."""

from pathlib import Path

from .errors import bad_request
from .executor import Executor
from .job_definitions import Job, JobDefinitions
from .jobs import Jobs
from .run_store import RunStore
from .runs import Execution, Run, TaskRun
from .task_specs import in_dependency_order, with_dependents

MAX_IDEMPOTENCY_TOKEN = 64
# Task-parameter styles of run-now/repair that predate job parameters; the emulator's jobs
# take job_parameters and dynamic value references only.
LEGACY_PARAMETERS = ("python_params", "python_named_params", "notebook_params", "jar_params",
                     "spark_submit_params", "sql_params", "dbt_commands", "pipeline_params")


class JobRuns:
    def __init__(self, *, store: RunStore, definitions: JobDefinitions, runs_dir: Path,
                 executor: Executor, faults, host):
        self.store = store
        self._definitions = definitions
        self._runs_dir = runs_dir
        self._executor = executor
        self._faults = faults
        self._host = host
        self._idempotency: dict[str, int] = {}

    def routes(self, router) -> None:
        for version in ("2.1", "2.2"):
            router.add("POST", f"/api/{version}/jobs/run-now", self.run_now)
            router.add("POST", f"/api/{version}/jobs/runs/repair", self.repair)
            router.add("POST", f"/api/{version}/jobs/runs/cancel-all", self.cancel_all)

    # -- run-now -------------------------------------------------------------------------

    def run_now(self, request):
        body = request.json()
        job = self._definitions.job(body.get("job_id"))
        settings = job.settings
        _refuse_legacy_parameters(body)
        token = body.get("idempotency_token")
        if token is not None and (not isinstance(token, str) or len(token) > MAX_IDEMPOTENCY_TOKEN):
            raise bad_request(
                f"idempotency_token must be a string of at most {MAX_IDEMPOTENCY_TOKEN} characters.")
        parameters = run_parameters(settings, body.get("job_parameters"))
        specs = _selected_tasks(job, body.get("only"))
        with self.store.lock:
            if token is not None and token in self._idempotency:
                # A repeated token returns the existing run: a retried run-now starts one run.
                run_id = self._idempotency[token]
                return {"run_id": run_id, "number_in_job": run_id}
            active = [run for run in self.store.runs_of_job(job.job_id) if not run.is_done()]
            run = self._new_run(job, specs, parameters)
            self.store.add(run)
            if token is not None:
                self._idempotency[token] = run.run_id
        limit = settings["max_concurrent_runs"]
        if len(active) < limit:
            run.fault = self._faults.take_run_fault()
            Jobs.start(run, self._executor.execute)
        elif (settings.get("queue") or {}).get("enabled"):
            run.fault = self._faults.take_run_fault()
            run.set_state("QUEUED")
            Jobs.start(run, self._queued)
        else:
            _skip(run, f"Skipping this run because the limit of {limit} maximum concurrent "
                       "runs has been reached.")
        return {"run_id": run.run_id, "number_in_job": run.run_id}

    def _new_run(self, job: Job, specs: list[dict], parameters: list[dict]) -> Run:
        run_id = self.store.new_id()
        run_dir = self._runs_dir / str(run_id)
        tasks = [TaskRun(spec["task_key"], self.store.new_id(), spec, run_dir / spec["task_key"])
                 for spec in specs]
        return Run(
            run_id=run_id,
            submitted=job.settings,
            tasks=tasks,
            dir=run_dir,
            run_page_url=f"{self._host()}/?o=0#job/{job.job_id}/run/{run_id}",
            run_type="JOB_RUN",
            job_id=job.job_id,
            job_parameters=parameters,
        )

    def _queued(self, run: Run) -> None:
        """Wait in QUEUED until the job has a free slot and no older queued run, then run."""
        while not run.cancel_requested.wait(0.05):
            limit = self._definitions.job(run.job_id).settings["max_concurrent_runs"]
            others = [r for r in self.store.runs_of_job(run.job_id) if r is not run and not r.is_done()]
            started = [r for r in others if r.life_cycle_state != "QUEUED"]
            older = [r for r in others if r.life_cycle_state == "QUEUED" and r.run_id < run.run_id]
            if len(started) < limit and not older:
                run.set_state("PENDING")
                self._executor.execute(run)
                return
        for task in run.tasks:
            task.finish("TERMINATED", "CANCELED", "Run cancelled while queued.")
        run.set_state("TERMINATED", "CANCELED", "Run cancelled while queued.")

    # -- repair --------------------------------------------------------------------------

    def repair(self, request):
        body = request.json()
        run = self.store.run(body.get("run_id"))
        _refuse_legacy_parameters(body)
        if run.run_type != "JOB_RUN":
            raise bad_request("The emulator repairs runs of jobs (jobs/run-now) only, not runs/submit runs.")
        with run.lock:  # check and reopen at once: two concurrent repairs cannot both start
            if not run.is_done():
                raise bad_request(
                    f"Run {run.run_id} is still active: only a run that has ended can be repaired.")
            _check_latest_repair_id(run, body.get("latest_repair_id"))
            settings = self._definitions.job(run.job_id).settings  # the job as it is now
            rerun = _rerun_keys(run, settings, body)
            parameters = run_parameters(settings, body.get("job_parameters"))
            repair_id = self.store.new_id()
            tasks = []
            for spec in in_dependency_order(settings["tasks"]):
                if spec["task_key"] in rerun:
                    # attempt_number stays 0 (a repair is no retry); the directory still
                    # tells attempts apart.
                    attempt = sum(1 for t in run.tasks if t.task_key == spec["task_key"])
                    tasks.append(TaskRun(
                        spec["task_key"], self.store.new_id(), spec,
                        run.dir / f"{spec['task_key']}.attempt-{attempt}", repair_id=repair_id,
                    ))
            # Job parameters not passed again fall back to the job's defaults, not to the
            # values the run started with.
            run.job_parameters = parameters
            run.submitted = settings
            run.add_execution(Execution(repair_id, tasks))
            self.store.add_tasks(run, tasks)
        Jobs.start(run, self._executor.execute_repair)
        return {"repair_id": repair_id}

    # -- cancel-all ----------------------------------------------------------------------

    def cancel_all(self, request):
        body = request.json()
        if body.get("job_id") is not None:
            runs = self.store.runs_of_job(self._definitions.job(body["job_id"]).job_id)
        elif body.get("all_queued_runs"):
            with self.store.lock:
                runs = [r for r in self.store.runs.values() if r.life_cycle_state == "QUEUED"]
        else:
            raise bad_request("Either job_id or all_queued_runs is required.")
        for run in runs:
            if not run.is_done():
                run.cancel_requested.set()
        return {}


def run_parameters(settings: dict, given) -> list[dict]:
    """[{name, default, value}] for a run: each declared parameter, overridden by `given`."""
    given = {} if given is None else given
    if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
        raise bad_request("job_parameters must map parameter names to strings.")
    defaults = {p["name"]: p["default"] for p in settings.get("parameters") or []}
    undeclared = sorted(set(given) - set(defaults))
    if undeclared:
        raise bad_request(
            f"Job parameters {', '.join(undeclared)} are not defined in the job "
            f"(defined: {', '.join(defaults) or 'none'})."
        )
    return [{"name": name, "default": default, "value": given.get(name, default)}
            for name, default in defaults.items()]


def _selected_tasks(job: Job, only) -> list[dict]:
    """The job's tasks in dependency order, or just those named in `only` (empty: all)."""
    tasks = in_dependency_order(job.settings["tasks"])
    if not only:
        return tasks
    if not isinstance(only, list) or not all(isinstance(k, str) for k in only):
        raise bad_request("only must be a list of task keys.")
    keys = {task["task_key"] for task in tasks}
    unknown = [key for key in only if key not in keys]
    if unknown:
        raise bad_request(f"Tasks {', '.join(unknown)} in only are not tasks of job {job.job_id}.")
    return [task for task in tasks if task["task_key"] in only]


def _check_latest_repair_id(run: Run, given) -> None:
    latest = run.latest_repair_id
    if latest is None and given is not None:
        raise bad_request(f"Run {run.run_id} has not been repaired yet: latest_repair_id must not be set.")
    if latest is not None and given is None:
        # Databricks' words (the SDK raises them as a plain DatabricksError subclass).
        raise bad_request("The latest repair ID needs to be provided in order to create a new repair")
    if latest is not None and str(given) != str(latest):
        raise bad_request(f"The latest repair ID of run {run.run_id} is {latest}, not {given}.")


def _rerun_keys(run: Run, settings: dict, body: dict) -> set[str]:
    """The task keys a repair reruns (with their dependents if asked), or a 400."""
    rerun_tasks = body.get("rerun_tasks") or None
    all_failed = bool(body.get("rerun_all_failed_tasks"))
    if rerun_tasks is not None and all_failed:
        raise bad_request("Only one of rerun_tasks or rerun_all_failed_tasks can be used.")
    if rerun_tasks is None and not all_failed:
        raise bad_request("Either rerun_tasks or rerun_all_failed_tasks is required.")
    in_run = {task.task_key: task for task in run.latest_tasks()}
    if rerun_tasks is not None:
        if not isinstance(rerun_tasks, list) or not all(isinstance(k, str) for k in rerun_tasks):
            raise bad_request("rerun_tasks must be a list of task keys.")
        if len(set(rerun_tasks)) != len(rerun_tasks):
            raise bad_request("rerun_tasks cannot contain duplicate task keys.")  # Databricks' words
        unknown = [key for key in rerun_tasks if key not in in_run]
        if unknown:
            raise bad_request(f"Tasks {', '.join(unknown)} are not part of run {run.run_id}.")
        chosen = set(rerun_tasks)
    else:
        chosen = {key for key, task in in_run.items() if task.result_state not in ("SUCCESS", "EXCLUDED")}
        if not chosen:
            raise bad_request(f"Run {run.run_id} has no failed tasks to repair.")
    if body.get("rerun_dependent_tasks"):
        chosen = with_dependents([t for t in settings["tasks"] if t["task_key"] in in_run], chosen)
    gone = sorted(chosen - {task["task_key"] for task in settings["tasks"]})
    if gone:
        raise bad_request(f"Tasks {', '.join(gone)} are no longer tasks of job {run.job_id}.")
    return chosen


def _skip(run: Run, message: str) -> None:
    """max_concurrent_runs reached without a queue: the run ends SKIPPED at once."""
    for task in run.tasks:
        task.finish("SKIPPED", "MAXIMUM_CONCURRENT_RUNS_REACHED", message)
    run.set_state("SKIPPED", "MAXIMUM_CONCURRENT_RUNS_REACHED", message)


def _refuse_legacy_parameters(body: dict) -> None:
    legacy = [name for name in LEGACY_PARAMETERS if body.get(name)]
    if legacy:
        raise bad_request(f"The emulator does not support {', '.join(legacy)}: use job_parameters.")
