"""The Databricks target pointed at the local workspace emulator (tests and benchmark)."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from databricks_emulator import DatabricksEmulator
from jobs.pipes_io import VOLUMES_MOUNT_ENV
from resources.databricks_runner import DatabricksRunner
from resources.spark_server import LocalSparkServer


def start_emulator(root: Path, token: str, **options) -> DatabricksEmulator:
    """An emulator whose task processes see its volumes where a cluster mounts them,
    none of this process's DATABRICKS_* settings, and the warm local Spark server as their
    cluster's Spark: like Python on a standard access mode cluster, which reaches the cluster's
    Spark through Spark Connect (`SPARK_REMOTE`). Its DBFS root is disabled, as on new accounts:
    the platform keeps everything on volumes. `options` go to DatabricksEmulator."""
    task_env = {k: v for k, v in os.environ.items() if not k.startswith("DATABRICKS_")}
    task_env |= {
        VOLUMES_MOUNT_ENV: str(root / "volumes"),
        "SPARK_REMOTE": LocalSparkServer.from_env().ensure_running(),
    }
    return DatabricksEmulator(root, token=token, env=task_env, dbfs_root_enabled=False, **options).start()


# Where the emulated deployment keeps its job package and its Pipes files.
ARTIFACTS_DIR = "/Volumes/main/platform/artifacts"
PIPES_VOLUME = "/Volumes/main/platform/pipes"


def emulated_settings(warehouse: Path, landing: str) -> dict:
    """The settings file of the Databricks target on the emulator: tables are directory tables."""
    return {
        "deployment": "test", "landing_dir": landing, "warehouse_dir": str(warehouse),
        "artifacts_dir": ARTIFACTS_DIR, "pipes_volume": PIPES_VOLUME,
        "compute": {"node_type_id": "emulated"}, "poll_interval_seconds": 0.2,
    }


def emulated_runner(warehouse: Path, landing: str, **settings) -> DatabricksRunner:
    """The Databricks runner as configured for the emulator: DATABRICKS_HOST / _TOKEN point at
    it; `settings` replace the emulated ones."""
    return DatabricksRunner(
        host=dg.EnvVar("DATABRICKS_HOST"),
        token=dg.EnvVar("DATABRICKS_TOKEN"),
        **(emulated_settings(warehouse, landing) | settings),
    )
