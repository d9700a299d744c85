"""The interface every runner resource implements: local process or Databricks run."""

from dataclasses import dataclass

import dagster as dg

from jobs.contract import RETRYABLE_EXIT_CODE, RETRYABLE_MARKER, DayRange, JobParameters, SparkTarget


@dataclass(frozen=True)
class JobRequest:
    """What an asset asks of its table's job. A runner adds where the job runs and reads, and
    sends the whole as the job's parameters."""

    table: str  # schema.table
    catalog: str
    input_versions: dict[str, int]  # input table -> Delta version to read
    write_id: str  # the write's identity: retries of the step repeat it, Delta commits it once
    days: DayRange | None = None  # the days of a partitioned table's run
    full_refresh: bool = False  # rebuild from all inputs (JobParameters.full_refresh)

    def parameters(self, *, landing_dir: str, warehouse_dir: str | None, spark: SparkTarget,
                   ran_on: str, conflict_retries: int = 0) -> JobParameters:
        return JobParameters(
            table=self.table, catalog=self.catalog, input_versions=self.input_versions,
            write_id=self.write_id, days=self.days, landing_dir=landing_dir,
            warehouse_dir=warehouse_dir, spark=spark, ran_on=ran_on, conflict_retries=conflict_retries,
            full_refresh=self.full_refresh,
        )


class TableRunner(dg.ConfigurableResource):
    """Runs the job that builds one table's asset; one subclass per target."""

    def run(self, context: dg.AssetExecutionContext, request: JobRequest) -> dg.MaterializeResult:
        """Build the table that `request` names, as it says."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Get ready for a run's first job, before the run starts (nothing by default)."""

    def is_retryable(self, error: Exception) -> bool:
        """Whether the job failed in a way that running it again can fix (a write conflict):
        the job exits with RETRYABLE_EXIT_CODE after printing RETRYABLE_MARKER and the reason,
        which the local runner sees as the exit code and a Databricks task's runs/get-output carries."""
        text = str(error)
        return f"failed with code {RETRYABLE_EXIT_CODE}" in text or f"{RETRYABLE_MARKER} " in text

    def jobs_at_once(self) -> int:
        """How many of a run's table jobs run at once unless PLATFORM_MAX_PARALLEL_JOBS says."""
        return 4

    def check_tables(self, declared: set[str]) -> None:
        """Raise if the runner's settings name a table that is not declared."""

    def default_catalog(self) -> str:
        """The catalog of the tables when PLATFORM_CATALOG is not set."""
        return "main"

    def runs_elsewhere(self) -> bool:
        """Whether a job can outlive the Dagster run that started it (it runs on other machines,
        which a dead run worker cannot take down with it)."""
        return False

    def cancel_leftovers(self, run: dg.DagsterRun) -> str | None:
        """Cancel what an ended Dagster run left running elsewhere; say what, or None."""
        return None
