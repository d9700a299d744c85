"""How a job opens its Dagster Pipes session: locally the defaults, on Databricks files.

On Databricks the orchestrator leaves the context and collects messages as files on a Unity
Catalog volume, on every kind of compute (never the DBFS root, which workspaces may disable).
The platform reads and writes them through the volume's mount, read from the environment (a
local Databricks emulator mounts volumes elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from dagster_pipes import (
    DAGSTER_PIPES_CONTEXT_ENV_VAR,
    DAGSTER_PIPES_MESSAGES_ENV_VAR,
    PipesBlobStoreMessageWriter,
    PipesBufferedFilesystemMessageWriterChannel,
    PipesCliArgsParamsLoader,
    PipesContext,
    PipesContextLoader,
    PipesEnvVarParamsLoader,
    PipesMappingParamsLoader,
    PipesParams,
    encode_param,
    open_dagster_pipes,
)

from jobs.contract import TaskFolder

# When a task of a shared job run found its context (time.monotonic()); None if it never waited.
context_arrived: float | None = None

VOLUMES_MOUNT_ENV = "PLATFORM_VOLUMES_MOUNT"  # where it mounts /Volumes; /Volumes on Databricks


def on_databricks() -> bool:
    """Databricks sets DATABRICKS_RUNTIME_VERSION on every cluster and serverless task."""
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def mounted(path: str) -> str:
    """The local file behind a volume path (`/Volumes/c/s/v/x`)."""
    if not path.startswith("/Volumes/"):
        raise ValueError(f"Pipes path {path!r} is not on a Unity Catalog volume (/Volumes/...): "
                         "the orchestrator's pipes_volume setting names one")
    return os.path.join(os.environ.get(VOLUMES_MOUNT_ENV, "/Volumes"), path.removeprefix("/Volumes/"))


class MountedContextLoader(PipesContextLoader):
    """Reads the context file the orchestrator put on the volume."""

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


class ContextNeverCame(Exception):
    """The orchestrator gave up on this task, or never wrote its context in time."""


def open_pipes() -> PipesContext:
    """Open the Pipes session for this process (use as a context manager)."""
    if not on_databricks():
        return open_dagster_pipes()
    if TaskFolder.ARGUMENT in sys.argv:
        return _open_task_folder_pipes()
    # On an existing cluster or serverless the bootstrap comes as CLI arguments, else env vars.
    cli_args = PipesCliArgsParamsLoader()
    return open_dagster_pipes(
        params_loader=cli_args if cli_args.is_dagster_pipes_process() else PipesEnvVarParamsLoader(),
        context_loader=MountedContextLoader(),
        message_writer=MountedMessageWriter(interval=1),
    )


def _open_task_folder_pipes() -> PipesContext:
    """A task of a shared job run: its Pipes session is in a folder named by the run and the
    task attempt, where the orchestrator's step for this table writes the context once Dagster
    starts that step."""
    parser = argparse.ArgumentParser()
    parser.add_argument(TaskFolder.ARGUMENT, dest="folder", required=True)
    parser.add_argument(TaskFolder.WAIT_ARGUMENT, dest="wait_seconds", type=float, default=1800)
    args, _ = parser.parse_known_args()
    folder = TaskFolder(args.folder)
    global context_arrived
    context_arrived = _wait_for_context(folder, args.wait_seconds)
    # The orchestrator creates it too, but only after it wrote the context this task just read.
    os.makedirs(mounted(folder.messages), exist_ok=True)
    params = {
        DAGSTER_PIPES_CONTEXT_ENV_VAR: encode_param({"path": folder.context}),
        DAGSTER_PIPES_MESSAGES_ENV_VAR: encode_param({
            "path": folder.messages, PipesBlobStoreMessageWriter.INCLUDE_STDIO_IN_MESSAGES_KEY: True,
        }),
    }
    return open_dagster_pipes(
        params_loader=PipesMappingParamsLoader(params),
        context_loader=MountedContextLoader(),
        message_writer=MountedMessageWriter(interval=1),
    )


def _wait_for_context(folder: TaskFolder, timeout_seconds: float) -> float:
    """Wait for the context file (or the abort file); return when it was there."""
    context, abort = mounted(folder.context), mounted(folder.abort)
    deadline = time.monotonic() + timeout_seconds
    while True:
        if os.path.exists(abort):
            with open(abort, encoding="utf-8") as file:
                raise ContextNeverCame(f"not built: {file.read().strip()}")
        if os.path.exists(context):
            try:
                with open(context, encoding="utf-8") as file:
                    json.load(file)  # complete, not still being written
                return time.monotonic()
            except ValueError:
                pass
        if time.monotonic() > deadline:
            raise ContextNeverCame(
                f"no Pipes context at {folder.context} after {timeout_seconds:.0f} s: the Dagster step "
                "for this table did not start (its run ended or was lost)")
        time.sleep(0.2)
