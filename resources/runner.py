"""The interface every runner resource implements: local process or Databricks run."""

import dagster as dg


class TableRunner(dg.ConfigurableResource):
    """Runs the job that builds one table's asset; one subclass per target."""

    def run(
        self, context: dg.AssetExecutionContext, input_versions: dict[str, int]
    ) -> dg.MaterializeResult:
        """Build the asset's table, reading each input table at the Delta version given."""
        raise NotImplementedError

    def check_tables(self, declared: set[str]) -> None:
        """Raise if the runner's settings name a table that is not declared."""
