"""Runs a table's job as a Databricks run, through dagster-databricks' Pipes clients."""

import hashlib
import os
import re
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import yaml
from pydantic import model_validator
from dagster_databricks import PipesDatabricksClient

# The serverless client and the volume channel are not exported from the package root in 0.29.27.
from dagster_databricks.pipes import (
    PipesDatabricksServerlessClient,
    PipesUnityCatalogVolumesContextInjector,
    PipesUnityCatalogVolumesMessageReader,
)
from databricks.sdk import WorkspaceClient
from databricks.sdk.core import Config
from databricks.sdk.service import compute, jobs

from jobs.contract import SparkTarget
from jobs.registry import dependents, discover
from resources.databricks_job import (
    DEFINITIONS_MODULE, MAX_TASKS_PER_CLUSTER, PIPES_ROOT_PARAMETER, JobSpec, ensure_job, task_key,
)
from resources.databricks_shared_run import (
    abort_tasks, cancel_if_running, failure_reason, follow_task, run_tables, start_or_join,
)
from resources.job_package import build_job_package, upload_if_absent
from resources.runner import JobRequest, TableRunner

SERVERLESS_ENVIRONMENT = "platform"
DEPLOYMENT_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")
VOLUME_PATH = re.compile(r"/Volumes/[^/]+/[^/]+/[^/]+(/|$)")
# The settings without a default that works on every workspace, and what each one is.
REQUIRED_SETTINGS = {
    "deployment": "this Dagster deployment's name: dev, prod, a branch",
    "landing_dir": "where the landing files are, e.g. /Volumes/<catalog>/landing/tpch",
    "artifacts_dir": "a volume folder for the job package, e.g. /Volumes/<catalog>/platform/artifacts",
    "pipes_volume": "a volume folder for Pipes' context and message files, e.g. /Volumes/<catalog>/platform/pipes",
    "compute": "the tasks' compute: a new cluster's node_type_id, or existing_cluster_id, or serverless: true",
}


class DatabricksCompute(dg.Config):
    """The compute of a table's run: a new job cluster (default), an existing cluster, or
    serverless."""

    existing_cluster_id: str | None = None
    serverless: bool = False
    spark_version: str = "17.3.x-scala2.13"
    # No default: node types differ per cloud (i3.xlarge on AWS, Standard_D4ds_v5 on Azure,
    # n2-standard-4 on GCP). A new cluster needs this or instance_pool_id.
    node_type_id: str | None = None
    num_workers: int = 1
    autoscale_min_workers: int | None = None  # both set: autoscale instead of num_workers
    autoscale_max_workers: int | None = None
    instance_pool_id: str | None = None
    # Unity Catalog needs an access mode on the cluster; dedicated (single user) suits jobs.
    data_security_mode: str = "SINGLE_USER"
    spark_conf: dict[str, str] = {}

    @model_validator(mode="after")
    def _one_kind_of_compute(self) -> "DatabricksCompute":
        if self.serverless and self.existing_cluster_id:
            raise ValueError("compute: choose serverless or existing_cluster_id, not both")
        if (self.autoscale_min_workers is None) != (self.autoscale_max_workers is None):
            raise ValueError("compute: set both autoscale_min_workers and autoscale_max_workers")
        if not (self.serverless or self.existing_cluster_id or self.node_type_id or self.instance_pool_id):
            raise ValueError("compute: a new cluster needs node_type_id (it differs per cloud: i3.xlarge on "
                             "AWS, Standard_D4ds_v5 on Azure, n2-standard-4 on GCP) or instance_pool_id")
        return self

    def task_fields(self) -> dict:
        """The compute part of a `runs/submit` task."""
        if self.serverless:
            return {"environment_key": SERVERLESS_ENVIRONMENT}
        if self.existing_cluster_id:
            return {"existing_cluster_id": self.existing_cluster_id}
        cluster = {
            "spark_version": self.spark_version,
            "spark_conf": dict(self.spark_conf),
            "data_security_mode": self.data_security_mode,
        }
        if self.instance_pool_id:
            cluster["instance_pool_id"] = self.instance_pool_id
        else:
            cluster["node_type_id"] = self.node_type_id
        if self.autoscale_min_workers is not None:
            cluster["autoscale"] = {
                "min_workers": self.autoscale_min_workers,
                "max_workers": self.autoscale_max_workers,
            }
        else:
            cluster["num_workers"] = self.num_workers
        return {"new_cluster": cluster}


# Databricks' limits on the job the platform manages (Jobs API 2.2: a job holds at most 1,000
# tasks; a task key is 1 to 100 characters).
MAX_TASKS_PER_JOB = 1000
MAX_TASK_KEY_LENGTH = 100


class DatabricksRunner(TableRunner):
    """Runs table jobs on Databricks. By default the tables of one Dagster run are the tasks
    of one run of the deployment's job (resources/databricks_shared_run.py), sharing its job
    clusters; with `run_per_table`, each table is a one-off run of its own (`runs/submit`).

    The job package is uploaded to `artifacts_dir` once per content; Pipes' files go in
    `pipes_volume`. Tables are Unity Catalog tables unless `warehouse_dir` names a directory of
    Delta tables.
    """

    host: str
    token: str
    # Names the job this Dagster deployment manages (dev, prod, a branch): deployments that
    # share a workspace each run their own job, with their own code.
    deployment: str
    landing_dir: str
    warehouse_dir: str | None = None
    # Volumes, not the DBFS root: Databricks deprecates it, new accounts and admins turn it off,
    # runtimes 15+ refuse libraries from it, and every workspace user can read it.
    artifacts_dir: str
    pipes_volume: str
    compute: DatabricksCompute  # of every table's task, unless compute_by_table names its own
    compute_by_table: dict[str, DatabricksCompute] = {}  # "schema.table" -> its own compute
    poll_interval_seconds: float = 5.0
    timeout_seconds: int = 0  # 0: no limit
    # Each table a `runs/submit` run with compute of its own (full isolation, a cluster start
    # per table) instead of a task of the Dagster run's shared job run.
    run_per_table: bool = False
    # How long a task of a shared run waits for its step to give it its Pipes context.
    context_wait_seconds: int = 1800

    @model_validator(mode="before")
    @classmethod
    def _required_settings_named(cls, settings):
        if isinstance(settings, dict):
            missing = [name for name in REQUIRED_SETTINGS if not settings.get(name)]
            if missing:
                raise ValueError("the Databricks target needs " + "; ".join(
                    f"{name} ({REQUIRED_SETTINGS[name]})" for name in missing) + " in PLATFORM_DATABRICKS_CONFIG")
        return settings

    @model_validator(mode="after")
    def _settings_are_well_formed(self) -> "DatabricksRunner":
        if not DEPLOYMENT_NAME.fullmatch(self.deployment):
            raise ValueError(f"deployment {self.deployment!r}: use 1-40 letters, digits, '-' or '_'")
        for name in ("artifacts_dir", "pipes_volume"):
            if not VOLUME_PATH.match(getattr(self, name)):
                raise ValueError(f"{name} {getattr(self, name)!r} is not in a Unity Catalog volume: "
                                 "use /Volumes/<catalog>/<schema>/<volume>[/folder]")
        return self

    @property
    def job_name(self) -> str:
        """The deployment's job, in the Jobs UI."""
        return f"{DEFINITIONS_MODULE} [{self.deployment}]"

    @classmethod
    def from_env(cls) -> "DatabricksRunner":
        """Host and token from DATABRICKS_HOST / DATABRICKS_TOKEN (kept as env var references,
        so their values never enter Dagster's config); everything else from the YAML file
        named by PLATFORM_DATABRICKS_CONFIG (see databricks.example.yaml)."""
        settings = {}
        if config_file := os.environ.get("PLATFORM_DATABRICKS_CONFIG"):
            settings = yaml.safe_load(Path(config_file).read_text()) or {}
        for forbidden in ("host", "token"):
            if forbidden in settings:
                raise ValueError(
                    f"{config_file}: '{forbidden}' comes from DATABRICKS_{forbidden.upper()}, "
                    "not from the settings file"
                )
        return cls(host=dg.EnvVar("DATABRICKS_HOST"), token=dg.EnvVar("DATABRICKS_TOKEN"), **settings)

    def check_tables(self, declared: set[str]) -> None:
        unknown = sorted(set(self.compute_by_table) - declared)
        if unknown:
            raise ValueError(f"compute_by_table names undeclared table(s) {unknown}")
        on_existing = Counter(c.existing_cluster_id for c in (self._compute(t) for t in declared) if c.existing_cluster_id)
        crowded = {cluster: n for cluster, n in on_existing.items() if n > MAX_TASKS_PER_CLUSTER}
        if crowded and not self.run_per_table:
            raise ValueError(
                f"existing_cluster_id: {crowded} tables on one all-purpose cluster, which opens at most "
                f"{MAX_TASKS_PER_CLUSTER} execution contexts at once; give some tables other compute "
                "(compute_by_table) or use job clusters")
        too_long = sorted(t for t in declared if len(task_key(t)) > MAX_TASK_KEY_LENGTH)
        if too_long:
            raise ValueError(
                f"Databricks task keys are at most {MAX_TASK_KEY_LENGTH} characters, and a table's "
                f"task key is its name with '__' for the dot; too long: {too_long}")
        if not self.run_per_table and len(declared) > MAX_TASKS_PER_JOB:
            schemas = Counter(name.split(".")[0] for name in declared)
            raise ValueError(
                f"{len(declared):,} tables are declared, and on the Databricks target each is a task of "
                f"the platform's one job, which Databricks limits to {MAX_TASKS_PER_JOB:,} tasks; "
                f"tables per schema: {dict(sorted(schemas.items()))}. Set run_per_table: true in "
                "PLATFORM_DATABRICKS_CONFIG (a run per table) until the job is split")

    def default_catalog(self) -> str:
        if self.warehouse_dir:  # directory tables: the catalog is only a folder and a key part
            return super().default_catalog()
        raise ValueError("set PLATFORM_CATALOG to the Unity Catalog catalog of the tables: no catalog "
                         "exists in every workspace (newer ones have none called main)")

    def runs_elsewhere(self) -> bool:
        return True

    def jobs_at_once(self) -> int:
        # Every step whose table is ready runs: a task that Databricks started waits for its
        # step, holding an execution context, so Dagster must not hold the step back. A step
        # only follows its task; the steps ready at once are at most the graph's width.
        return MAX_TASKS_PER_JOB

    def cancel_leftovers(self, run: dg.DagsterRun) -> str | None:
        cancelled = cancel_if_running(self.workspace_client(), run)
        return None if cancelled is None else f"Databricks run {cancelled}"

    def workspace_client(self) -> WorkspaceClient:
        return WorkspaceClient(config=Config(host=self.host, token=self.token))

    def is_retryable(self, error: Exception) -> bool:
        # A task of a shared run retries a write conflict in place (conflict_retries): the
        # run cannot start it again while its other tasks go on.
        return self.run_per_table and super().is_retryable(error)

    def run(self, context: dg.AssetExecutionContext, request: JobRequest) -> dg.MaterializeResult:
        workspace = self.workspace_client()
        package = build_job_package()
        wheel, uploaded_wheel = upload_if_absent(workspace, self.artifacts_dir, package.wheel)
        launcher, uploaded_launcher = upload_if_absent(workspace, self.artifacts_dir, package.launcher)
        context.log.info(
            f"job package {package.wheel.name}: "
            f"{'uploaded' if uploaded_wheel or uploaded_launcher else 'already in the workspace'}"
        )
        if self.run_per_table:
            return self._submit(context, request, workspace, wheel, launcher)
        return self._run_in_shared_run(context, request, workspace, wheel, launcher)

    def _run_in_shared_run(self, context: dg.AssetExecutionContext, request: JobRequest,
                           workspace: WorkspaceClient, wheel: str, launcher: str) -> dg.MaterializeResult:
        tables, pipes_root = discover().tables, self._pipes_root()
        spec = JobSpec(
            name=self.job_name, tables=tables,
            compute={name: self._compute(name).task_fields() for name in tables},
            launcher=launcher, libraries=[{"whl": wheel}],
            environments=self._environments(wheel, tables), pipes_root=pipes_root,
            context_wait_seconds=self.context_wait_seconds, timeout_seconds=self.timeout_seconds,
        )
        job_id = ensure_job(workspace, spec)
        in_run = run_tables(context, request.catalog, tables)
        shared = start_or_join(context, workspace, job_id, in_run, {PIPES_ROOT_PARAMETER: pipes_root}, wheel)
        job = request.parameters(landing_dir=self.landing_dir, warehouse_dir=self.warehouse_dir,
                                 spark=SparkTarget(), ran_on="Databricks", conflict_retries=3)
        # The tasks that wait on this step in this run: its own, and those Dagster will then skip.
        waiting = [request.table, *dependents({t: tables[t] for t in in_run}, request.table)]
        name = f"{request.catalog}.{request.table}"
        try:
            materialization = follow_task(context, workspace, shared, request.table, pipes_root,
                                          job.to_extras(), self.poll_interval_seconds)
        except BaseException as error:
            abort_tasks(context, workspace, shared, waiting, pipes_root, f"the Dagster step of {name} failed: {error}")
            raise
        failed = [c.check_name for c in materialization.check_results or []
                  if not c.passed and c.severity == dg.AssetCheckSeverity.ERROR]
        if failed:
            abort_tasks(context, workspace, shared, waiting, pipes_root,
                        f"blocking check(s) {failed} of {name} failed")
        return materialization

    def _compute(self, table: str) -> DatabricksCompute:
        return self.compute_by_table.get(table, self.compute)

    def _pipes_root(self) -> str:
        return f"{self.pipes_volume.rstrip('/')}/shared_runs"

    def _environments(self, wheel: str, tables) -> list[dict]:
        if not any(self._compute(name).serverless for name in tables):
            return []
        return [{"environment_key": SERVERLESS_ENVIRONMENT,
                 "spec": {"environment_version": "2", "dependencies": [wheel]}}]

    def _submit(self, context: dg.AssetExecutionContext, request: JobRequest, workspace: WorkspaceClient,
                wheel: str, launcher: str) -> dg.MaterializeResult:
        name, catalog = request.table, request.catalog
        compute_spec = self._compute(name)
        task = {
            "task_key": task_key(name),
            "spark_python_task": {"python_file": launcher},
            **compute_spec.task_fields(),
        }
        submit_args = {
            # dagster-databricks drops task tags: the name is what links back to the Dagster run.
            "run_name": f"{catalog}.{name} (dagster run {context.run.run_id[:8]})",
            # A submit retried after a 429 or 503 must not start a second run (64 hex chars:
            # Databricks' limit).
            "idempotency_token": hashlib.sha256(
                f"{context.run.run_id}/{name}/{context.retry_number}".encode()
            ).hexdigest(),
        }
        if self.timeout_seconds:
            submit_args["timeout_seconds"] = self.timeout_seconds
        if compute_spec.serverless:
            submit_args["environments"] = [jobs.JobEnvironment(
                environment_key=SERVERLESS_ENVIRONMENT,
                spec=compute.Environment(environment_version="2", dependencies=[wheel]),
            )]
        else:
            task["libraries"] = [{"whl": wheel}]
        # The job takes the session of the compute it runs on.
        job = request.parameters(landing_dir=self.landing_dir, warehouse_dir=self.warehouse_dir,
                                 spark=SparkTarget(), ran_on="Databricks")
        started_ms = int(time.time() * 1000)
        try:
            invocation = self._client(workspace, compute_spec).run(
                context=context, extras=job.to_extras(), task=jobs.SubmitTask.from_dict(task),
                submit_args=submit_args,
            )
        except Exception as error:  # dagster-databricks raises DagsterPipesExecutionError, not in dg.*
            raise dg.Failure(self._submitted_failure(workspace, submit_args["run_name"], started_ms, error)) from error
        # When the Dagster run is terminated, dagster-databricks cancels the Databricks run and
        # returns normally: the step must fail, not report what the job wrote before the cancel.
        run_id = int(invocation.metadata["Databricks Job Run ID"].value)
        state = workspace.jobs.get_run(run_id).state
        if state.result_state != jobs.RunResultState.SUCCESS:
            outcome = state.result_state or state.life_cycle_state
            raise dg.Failure(f"Databricks run {run_id} ended {outcome.value}, cancelled because the Dagster run "
                             "was terminated")
        return invocation.get_materialize_result()

    def _submitted_failure(self, workspace: WorkspaceClient, run_name: str, since_ms: int,
                           error: Exception) -> str:
        """Why a table's own run failed: dagster-databricks says only the run's state message,
        and the error is in the `runs/get-output` of its task run."""
        runs = workspace.jobs.list_runs(run_type=jobs.RunType.SUBMIT_RUN, start_time_from=since_ms - 60_000,
                                        expand_tasks=True)
        run = next((r for r in runs if r.run_name == run_name), None)
        if run is None or not run.tasks:
            return str(error)
        task = run.tasks[0]
        return f"Databricks run {run.run_id} failed: {failure_reason(workspace, task.run_id, task.state)}"

    def _client(self, workspace: WorkspaceClient, compute_spec: DatabricksCompute):
        """dagster-databricks' client for the compute, with Pipes' files on the volume."""
        injector = PipesUnityCatalogVolumesContextInjector(client=workspace, volume_path=self.pipes_volume)
        reader = PipesUnityCatalogVolumesMessageReader(
            client=workspace, volume_path=self.pipes_volume,
            interval=self.poll_interval_seconds, include_stdio_in_messages=True,
        )
        client = PipesDatabricksServerlessClient if compute_spec.serverless else PipesDatabricksClient
        extra = {"volume_path": self.pipes_volume} if compute_spec.serverless else {}
        return client(client=workspace, context_injector=injector, message_reader=reader,
                      poll_interval_seconds=self.poll_interval_seconds, **extra)
