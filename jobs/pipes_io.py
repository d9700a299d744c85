"""How a job opens its Dagster Pipes session: locally the defaults, on Databricks files.

On Databricks the orchestrator leaves the context and collects messages as files on DBFS
(clusters) or a Unity Catalog volume (serverless). dagster-pipes' own DBFS loader and writer
hard-code the `/dbfs` mount and the writer needs a Databricks SparkSession, so the platform
chooses its own, with both mount points read from the environment (a local Databricks
emulator mounts them elsewhere).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

from dagster_pipes import (
    PipesBlobStoreMessageWriter,
    PipesBufferedFilesystemMessageWriterChannel,
    PipesCliArgsParamsLoader,
    PipesContext,
    PipesContextLoader,
    PipesEnvVarParamsLoader,
    PipesParams,
    open_dagster_pipes,
)

DBFS_MOUNT_ENV = "PLATFORM_DBFS_MOUNT"  # where the cluster mounts DBFS; /dbfs on Databricks
VOLUMES_MOUNT_ENV = "PLATFORM_VOLUMES_MOUNT"  # where it mounts /Volumes; /Volumes on Databricks


def on_databricks() -> bool:
    """Databricks sets DATABRICKS_RUNTIME_VERSION on every cluster and serverless task."""
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def mounted(path: str) -> str:
    """The local file behind a DBFS path (`/tmp/x`) or a volume path (`/Volumes/c/s/v/x`)."""
    if path.startswith("/Volumes/"):
        root = os.environ.get(VOLUMES_MOUNT_ENV, "/Volumes")
        return os.path.join(root, path.removeprefix("/Volumes/"))
    return os.path.join(os.environ.get(DBFS_MOUNT_ENV, "/dbfs"), path.lstrip("/"))


class MountedContextLoader(PipesContextLoader):
    """Reads the context file the orchestrator put on DBFS or a volume."""

    @contextmanager
    def load_context(self, params: PipesParams) -> Iterator[dict]:
        with open(mounted(params["path"]), encoding="utf-8") as file:
            yield json.load(file)


class MountedMessageWriter(PipesBlobStoreMessageWriter):
    """Writes message chunks (`1.json`, `2.json`, ...) into the orchestrator's folder."""

    def make_channel(self, params: PipesParams) -> PipesBufferedFilesystemMessageWriterChannel:
        return PipesBufferedFilesystemMessageWriterChannel(
            path=mounted(params["path"]), interval=self.interval
        )

    def get_opened_extras(self) -> dict:
        # dagster-pipes reads cluster log paths from Databricks' Spark config here; stdout and
        # stderr travel in the messages instead (include_stdio_in_messages).
        return {}


def open_pipes() -> PipesContext:
    """Open the Pipes session for this process (use as a context manager)."""
    if not on_databricks():
        return open_dagster_pipes()
    # On an existing cluster or serverless the bootstrap comes as CLI arguments, else env vars.
    cli_args = PipesCliArgsParamsLoader()
    return open_dagster_pipes(
        params_loader=cli_args if cli_args.is_dagster_pipes_process() else PipesEnvVarParamsLoader(),
        context_loader=MountedContextLoader(),
        message_writer=MountedMessageWriter(interval=1),
    )
