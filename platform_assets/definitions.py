"""The code location: `dagster dev` and `dagster asset materialize` load `defs` from here.

Settings (environment variables, all optional):
  PLATFORM_CATALOG            catalog of every table key (default `main`)
  PLATFORM_WAREHOUSE_DIR      local Delta tables (default `.local/warehouse`)
  PLATFORM_LANDING_DIR        landing parquet files (default `.local/landing`)
  PLATFORM_MAX_PARALLEL_JOBS  table jobs running at once in a run (default 4)
  PLATFORM_SPARK_THREADS      cores for each local job's Spark (default 1)
  PLATFORM_SPARK_MEMORY       driver memory of each local job (default `1g`)
"""

import dagster as dg

from jobs.registry import discover_tables
from platform_assets.table_assets import table_assets
from resources.local_runner import LocalSparkRunner
from resources.paths import landing_dir, warehouse_dir


def setting(name: str, default: str) -> str:
    return dg.EnvVar(name).get_value(default) or default


def build_definitions() -> dg.Definitions:
    """Definitions for the declared tables, configured from the environment."""
    catalog = setting("PLATFORM_CATALOG", "main")
    assets = table_assets(discover_tables(), catalog)
    runner = LocalSparkRunner(
        warehouse_dir=warehouse_dir(),
        landing_dir=landing_dir(),
        spark_threads=int(setting("PLATFORM_SPARK_THREADS", "1")),
        driver_memory=setting("PLATFORM_SPARK_MEMORY", "1g"),
    )
    # A step mostly waits on its Spark process, so the cap is set by what the machine's
    # memory holds, not by its core count (Dagster's default).
    executor = dg.multiprocess_executor.configured(
        {"max_concurrent": int(setting("PLATFORM_MAX_PARALLEL_JOBS", "4"))}
    )
    return dg.Definitions(
        assets=assets,
        jobs=[dg.define_asset_job("all_tables", selection=dg.AssetSelection.all())],
        resources={"runner": runner},
        executor=executor,
    )


defs = build_definitions()
