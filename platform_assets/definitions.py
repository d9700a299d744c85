"""The code location: `dagster dev` and `dagster asset materialize` load `defs` from here.

Settings (environment variables, all optional):
  PLATFORM_CATALOG            catalog of every table key (default `main`)
  PLATFORM_WAREHOUSE_DIR      local Delta tables (default `.local/warehouse`)
  PLATFORM_LANDING_DIR        landing parquet files (default `.local/landing`)
  PLATFORM_MAX_PARALLEL_JOBS  table jobs running at once in a run (default 4)
  PLATFORM_SPARK_THREADS      cores for each local job's Spark (default 1)
  PLATFORM_SPARK_MEMORY       driver memory of each local job (default `1g`)
  PLATFORM_TARGET             `local` (default) or `databricks`
  PLATFORM_AUTOMATION_INTERVAL_SECONDS  how often the daemon observes sources and evaluates
                              the tables' triggers (default 10)
  PLATFORM_LANDING_SETTLE_SECONDS       age a landing file set must reach to count (default 5)
  DATABRICKS_HOST, DATABRICKS_TOKEN, PLATFORM_DATABRICKS_CONFIG   the Databricks target
"""

import dagster as dg

from jobs.registry import TABLES_PACKAGE, Declarations, discover
from platform_assets.source_sensor import source_sensor
from platform_assets.sources import Source, landing_key, source_asset
from platform_assets.table_assets import table_assets, table_key
from resources.databricks_runner import DatabricksRunner
from resources.landing_area import LandingArea
from resources.local_runner import LocalSparkRunner
from resources.runner import TableRunner


def setting(name: str, default: str) -> str:
    return dg.EnvVar(name).get_value(default) or default


def runner_from_env() -> TableRunner:
    """The runner of PLATFORM_TARGET: jobs as local processes, or as Databricks runs."""
    target = setting("PLATFORM_TARGET", "local")
    if target == "local":
        return LocalSparkRunner.from_env()
    if target == "databricks":
        return DatabricksRunner.from_env()
    raise ValueError(f"PLATFORM_TARGET must be 'local' or 'databricks', not '{target}'")


def sources(declarations: Declarations, catalog: str) -> list[Source]:
    """Every landing dataset a table reads, and every external table."""
    datasets = sorted({d for table in declarations.tables.values() for d in table.landing_datasets})
    return [Source(key=landing_key(dataset), dataset=dataset) for dataset in datasets] + [
        Source(key=table_key(catalog, name), table=table)
        for name, table in sorted(declarations.external.items())
    ]


def build_definitions(tables_package: str = TABLES_PACKAGE) -> dg.Definitions:
    """Definitions for the tables declared under `tables_package`, configured from the environment."""
    catalog = setting("PLATFORM_CATALOG", "main")
    declarations = discover(tables_package)
    tables = declarations.tables
    runner = runner_from_env()
    runner.check_tables(set(tables))
    observed = sources(declarations, catalog)
    interval = int(setting("PLATFORM_AUTOMATION_INTERVAL_SECONDS", "10"))
    # Dagster's default caps parallel steps at the core count, but a step mostly waits on its
    # Spark process: the cap is a fixed default to tune by memory (a local job's process tree
    # peaks near 1 GiB; see the README's benchmark).
    executor = dg.multiprocess_executor.configured(
        {"max_concurrent": int(setting("PLATFORM_MAX_PARALLEL_JOBS", "4"))}
    )
    return dg.Definitions(
        assets=[*table_assets(tables, catalog), *(source_asset(source) for source in observed)],
        jobs=[dg.define_asset_job("all_tables", selection=dg.AssetSelection.all())],
        sensors=[
            source_sensor(observed, interval),
            # Declared rather than Dagster's default one, to run from the start at our interval.
            dg.AutomationConditionSensorDefinition(
                "table_automation",
                target=dg.AssetSelection.all(),
                default_status=dg.DefaultSensorStatus.RUNNING,
                minimum_interval_seconds=interval,
            ),
        ],
        resources={"runner": runner, "landing": LandingArea.from_env()},
        executor=executor,
    )


defs = build_definitions()
