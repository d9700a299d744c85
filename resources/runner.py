"""The interface every runner resource implements: local process or Databricks run."""

import dagster as dg


def job_extras(
    *, ran_on: str, catalog: str, warehouse_dir: str | None, landing_dir: str,
    input_versions: dict[str, int], spark_conf: dict[str, str],
) -> dict:
    """The Pipes extras every job reads (jobs/runtime.py): one contract for all runners."""
    return {
        "ran_on": ran_on,
        "catalog": catalog,
        "warehouse_dir": warehouse_dir,
        "landing_dir": landing_dir,
        "input_versions": input_versions,
        "spark_conf": spark_conf,
    }


class TableRunner(dg.ConfigurableResource):
    """Runs the job that builds one table's asset; one subclass per target."""

    def run(
        self, context: dg.AssetExecutionContext, input_versions: dict[str, int]
    ) -> dg.MaterializeResult:
        """Build the asset's table, reading each input table at the Delta version given."""
        raise NotImplementedError

    def check_tables(self, declared: set[str]) -> None:
        """Raise if the runner's settings name a table that is not declared."""
