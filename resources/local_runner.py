"""Runs a table's job on this machine: a Dagster Pipes subprocess with local Spark."""

import os
import sys

import dagster as dg

from resources.local_spark import local_spark_conf
from resources.paths import PROJECT_DIR, landing_dir, warehouse_dir
from resources.runner import JobRequest, TableRunner, job_extras


class LocalSparkRunner(TableRunner):
    """Runs `python -m jobs.entrypoint <schema.table>` through `PipesSubprocessClient`."""

    warehouse_dir: str
    landing_dir: str
    spark_threads: int = 1
    driver_memory: str = "1g"
    shuffle_partitions: int = 4

    @classmethod
    def from_env(cls) -> "LocalSparkRunner":
        """Paths from PLATFORM_WAREHOUSE_DIR / PLATFORM_LANDING_DIR, Spark from
        PLATFORM_SPARK_THREADS / PLATFORM_SPARK_MEMORY; the defaults above where unset."""
        spark = {}
        if os.environ.get("PLATFORM_SPARK_THREADS"):
            spark["spark_threads"] = int(os.environ["PLATFORM_SPARK_THREADS"])
        if os.environ.get("PLATFORM_SPARK_MEMORY"):
            spark["driver_memory"] = os.environ["PLATFORM_SPARK_MEMORY"]
        return cls(warehouse_dir=warehouse_dir(), landing_dir=landing_dir(), **spark)

    def run(self, context: dg.AssetExecutionContext, request: JobRequest) -> dg.MaterializeResult:
        catalog, schema, table = context.asset_key.path
        extras = job_extras(
            ran_on="local process",
            catalog=catalog,
            warehouse_dir=self.warehouse_dir,
            landing_dir=self.landing_dir,
            request=request,
            spark_conf=local_spark_conf(self.spark_threads, self.driver_memory, self.shuffle_partitions),
        )
        # SPARK_LOCAL_IP keeps Spark from resolving the host name to pick an address at start.
        client = dg.PipesSubprocessClient(cwd=str(PROJECT_DIR), env={"SPARK_LOCAL_IP": "127.0.0.1"})
        return client.run(
            command=[sys.executable, "-m", "jobs.entrypoint", f"{schema}.{table}"],
            context=context,
            extras=extras,
        ).get_materialize_result()
