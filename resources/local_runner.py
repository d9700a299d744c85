"""Runs a table's job on this machine: a Dagster Pipes subprocess with local Spark."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import dagster as dg
from pydantic import PrivateAttr

from jobs.contract import SparkTarget
from resources.job_processes import JobProcesses, SparkServerIdentity, end_spare
from resources.local_spark import local_spark_conf
from resources.paths import landing_dir, warehouse_dir
from resources.runner import JobRequest, TableRunner
from resources.spark_server import LocalSparkServer


class LocalSparkRunner(TableRunner):
    """Runs each job as a `python -m jobs.entrypoint` process in a Dagster Pipes session
    (resources/job_processes.py).

    Each job is a process of its own (a failure stays in it), with a Spark session on the
    machine's warm Spark Connect server (`spark_mode="server"`, the default), or, with
    `spark_mode="process"`, in a Spark of its own that it starts and stops (one JVM per job,
    with the server's thread and memory settings). When a run's steps execute one after
    another in the run's process, the next job's process is started while a job runs.
    """

    warehouse_dir: str
    landing_dir: str
    spark: LocalSparkServer
    spark_mode: Literal["server", "process"] = "server"
    _processes: JobProcesses | None = PrivateAttr(default=None)

    @classmethod
    def from_env(cls) -> "LocalSparkRunner":
        """Paths from PLATFORM_WAREHOUSE_DIR / PLATFORM_LANDING_DIR, the mode from
        PLATFORM_SPARK_MODE, the Spark server from its own settings (LocalSparkServer.from_env)."""
        mode = dg.EnvVar("PLATFORM_SPARK_MODE").get_value() or "server"
        return cls(warehouse_dir=warehouse_dir(), landing_dir=landing_dir(),
                   spark=LocalSparkServer.from_env(), spark_mode=mode)

    def run(self, context: dg.AssetExecutionContext, request: JobRequest) -> dg.MaterializeResult:
        processes = self._job_processes()
        with self._spark_target() as (spark, server):
            job = request.parameters(landing_dir=self.landing_dir, warehouse_dir=self.warehouse_dir,
                                     spark=spark, ran_on="local process")
            more = _more_jobs_here(context, jobs_run=processes.started + 1)
            return processes.run(context, job.to_extras(), server, start_spare=more).get_materialize_result()

    def prepare(self) -> None:
        """Start the process of the next job that this process runs (see JobProcesses)."""
        with self._spark_target() as (_, server):
            self._job_processes().start_spare(server)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        end_spare()

    def _job_processes(self) -> JobProcesses:
        if self._processes is None:
            # For a job's own Spark: SPARK_LOCAL_IP keeps it from resolving the host name to
            # pick an address, PYSPARK_PYTHON runs its Python UDFs with this environment's Python.
            self._processes = JobProcesses(env={"SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable})
        return self._processes

    def jobs_at_once(self) -> int:
        # The jobs share the server's few cores: on 2 cores, two at once took as long as one
        # after the other at scale factor 1, and longer at 0.01, while each held a job process
        # and a step process in memory (docs/settings.md).
        return 1

    @contextmanager
    def _spark_target(self) -> Iterator[tuple[SparkTarget, SparkServerIdentity]]:
        if self.spark_mode == "process":
            yield (SparkTarget(conf=local_spark_conf(self.spark.threads, self.spark.memory,
                                                     self.spark.shuffle_partitions)),
                   SparkServerIdentity(url=None, pid=None))
            return
        # The lease keeps an idle-stop setting from stopping the server under a running job.
        with self.spark.lease() as url:
            status = self.spark.status()
            yield SparkTarget(remote=url), SparkServerIdentity(
                url=url, pid=status.jvm_pid if status else None, log=status.log if status else None)


def _more_jobs_here(context: dg.AssetExecutionContext, jobs_run: int) -> bool:
    """Whether this process runs more of the run's table jobs after `jobs_run` of them: only
    when steps execute one after another in the run's process."""
    selected = context.run.asset_selection
    return context.job_def.executor_def.name == dg.in_process_executor.name and (
        selected is not None and jobs_run < len(selected))
