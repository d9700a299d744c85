"""The interface every runner resource implements: local process or Databricks run."""

from dataclasses import dataclass

import dagster as dg

from jobs.runtime import RETRYABLE_EXIT_CODE


@dataclass(frozen=True)
class JobRequest:
    """What the orchestrator asks of one table job."""

    input_versions: dict[str, int]  # input table -> Delta version to read
    write_id: str  # the write's identity: retries of the step repeat it, Delta commits it once
    days: dict[str, str] | None = None  # {"start", "end"} of a partitioned table's run


def job_extras(
    *, ran_on: str, catalog: str, warehouse_dir: str | None, landing_dir: str,
    request: JobRequest, spark_conf: dict[str, str],
) -> dict:
    """The Pipes extras every job reads (jobs/runtime.py): one contract for all runners."""
    return {
        "ran_on": ran_on,
        "catalog": catalog,
        "warehouse_dir": warehouse_dir,
        "landing_dir": landing_dir,
        "input_versions": request.input_versions,
        "write_id": request.write_id,
        "days": request.days,
        "spark_conf": spark_conf,
    }


class TableRunner(dg.ConfigurableResource):
    """Runs the job that builds one table's asset; one subclass per target."""

    def run(self, context: dg.AssetExecutionContext, request: JobRequest) -> dg.MaterializeResult:
        """Build the asset's table as `request` says."""
        raise NotImplementedError

    def is_retryable(self, error: Exception) -> bool:
        """Whether the job failed in a way that running it again can fix (a write conflict):
        the job exits with RETRYABLE_EXIT_CODE after printing RETRYABLE and the reason, which
        the local runner sees as the exit code and a Databricks run's state message carries."""
        text = str(error)
        return f"failed with code {RETRYABLE_EXIT_CODE}" in text or "RETRYABLE " in text

    def check_tables(self, declared: set[str]) -> None:
        """Raise if the runner's settings name a table that is not declared."""
