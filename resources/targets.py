"""Which runner the platform's jobs use, chosen by configuration, never by code."""

import dagster as dg

from resources.local_runner import LocalSparkRunner
from resources.runner import TableRunner


def runner_from_env() -> TableRunner:
    """The runner of PLATFORM_TARGET: jobs as local processes (`local`, the default), or as
    Databricks runs (`databricks`)."""
    target = dg.EnvVar("PLATFORM_TARGET").get_value() or "local"
    if target == "local":
        return LocalSparkRunner.from_env()
    if target == "databricks":
        # Imported only for this target: dagster-databricks loads pyspark (through
        # dagster-pyspark), which the local orchestrator does without.
        from resources.databricks_runner import DatabricksRunner

        return DatabricksRunner.from_env()
    raise ValueError(f"PLATFORM_TARGET must be 'local' or 'databricks', not '{target}'")
