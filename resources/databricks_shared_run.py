"""One Databricks job run for one Dagster run: each table's step follows its own task.

The first step of a Dagster run to get here starts the run (`run-now`, only the tasks of the
run's tables) or, for a re-execution of a run that already had one, repairs that run (its
tables' tasks run again inside it). The Databricks run id is recorded as a tag on the Dagster
run, and every other step of the run joins it. Each step then opens a Pipes session in its
task's folder (jobs/contract.py `TaskFolder`), which the task waits for, and follows the task
in `runs/get` until it ends. Airflow's DatabricksWorkflowTaskGroup follows tasks the same way;
a per-table step keeps Dagster's view per table (materializations as each task ends, each
task's output in its table's logs, retries and failures per table).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
from dagster_databricks import PipesDbfsMessageReader
from dagster_databricks.pipes import PipesUnityCatalogVolumesMessageReader
from dagster_pipes import PipesBlobStoreMessageWriter
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import DatabricksError
from databricks.sdk.service import jobs

from jobs.contract import TaskFolder
from platform_assets.table_assets import table_key
from resources.databricks_job import machine_lock, task_key

# The Databricks run serving a Dagster run, as JSON. A re-execution may inherit its parent's
# tags, so the record names the Dagster run it was made for.
RUN_TAG = "platform/databricks_run"
_ACTIVE = ("PENDING", "QUEUED", "BLOCKED", "RUNNING", "TERMINATING", "WAITING_FOR_RETRY")


def run_tables(context: dg.AssetExecutionContext, catalog: str, tables: dict) -> list[str]:
    """The tables whose steps this Dagster run executes (a re-execution: only those it reruns)."""
    by_step = {table_key(catalog, name).to_python_identifier(): name for name in tables}
    steps = context.run.step_keys_to_execute
    if steps is None:
        selected = context.run.asset_selection
        steps = by_step if selected is None else [key.to_python_identifier() for key in selected]
    found = [by_step[step] for step in steps if step in by_step]
    if not found:  # `only=[]` would run every task of the job
        raise dg.Failure(f"run {context.run.run_id} selects none of the tables {sorted(tables)}")
    return found


@dataclass(frozen=True)
class SharedRun:
    """The Databricks run of a Dagster run: its id, and the repair that serves this Dagster
    run (None: the run's first execution)."""

    dagster_run_id: str
    run_id: int
    repair_id: int | None = None

    def to_tag(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> "SharedRun | None":
        return cls(**json.loads(tags[RUN_TAG])) if RUN_TAG in tags else None


def start_or_join(context: dg.AssetExecutionContext, workspace: WorkspaceClient, job_id: int,
                  tables: list[str], job_parameters: dict[str, str]) -> SharedRun:
    """The Databricks run serving this Dagster run, started (or repaired) by the first of its
    steps to ask; `tables` are the tables the Dagster run builds."""
    instance, dagster_run_id = context.instance, context.run.run_id
    with machine_lock(f"run-{dagster_run_id}"):
        recorded = SharedRun.from_tags(instance.get_run_by_id(dagster_run_id).tags)
        if recorded is not None and recorded.dagster_run_id == dagster_run_id:
            return recorded
        keys = [task_key(t) for t in tables]
        parent_id = context.run.parent_run_id
        parent = SharedRun.from_tags(instance.get_run_by_id(parent_id).tags) if parent_id else None
        shared = _repair(context, workspace, parent, keys, job_parameters)
        if shared is None:
            waiter = workspace.jobs.run_now(
                job_id, job_parameters=job_parameters, only=keys,
                # A run-now retried after a lost answer returns the run it started (64 hex
                # characters: Databricks' limit).
                idempotency_token=hashlib.sha256(dagster_run_id.encode()).hexdigest(),
            )
            shared = SharedRun(dagster_run_id, waiter.run_id)
            context.log.info(f"started Databricks run {shared.run_id} of job {job_id}: tasks {keys}")
        instance.add_run_tags(dagster_run_id, {RUN_TAG: shared.to_tag()})
        return shared


def _repair(context: dg.AssetExecutionContext, workspace: WorkspaceClient, parent: SharedRun | None,
            keys: list[str], job_parameters: dict[str, str]) -> SharedRun | None:
    """For a re-execution of a run with a Databricks run (`parent`): repair that Databricks run
    if it has ended and holds every task asked for; None otherwise."""
    if parent is None:
        return None
    try:
        run = workspace.jobs.get_run(parent.run_id, include_history=True)
    except DatabricksError as error:  # expired or deleted
        context.log.info(f"Databricks run {parent.run_id} cannot be read ({error}): starting a new run")
        return None
    if run.state.life_cycle_state.value in _ACTIVE or not set(keys) <= {t.task_key for t in run.tasks}:
        context.log.info(f"Databricks run {parent.run_id} cannot be repaired for {keys}: starting a new run")
        return None
    repairs = [item.id for item in run.repair_history or [] if item.type == jobs.RepairHistoryItemType.REPAIR]
    waiter = workspace.jobs.repair_run(
        parent.run_id, rerun_tasks=keys, latest_repair_id=repairs[-1] if repairs else None,
        # A repair without them would run with the job's defaults.
        job_parameters=job_parameters,
    )
    repair_id = waiter.response.repair_id
    context.log.info(f"repairing Databricks run {parent.run_id} (repair {repair_id}): tasks {keys}")
    return SharedRun(context.run.run_id, parent.run_id, repair_id)


def follow_task(context: dg.AssetExecutionContext, workspace: WorkspaceClient, shared: SharedRun,
                table: str, pipes_root: str, extras: dict, poll_seconds: float) -> dg.MaterializeResult:
    """Give the table's task its Pipes context and follow it until it ends; return what it
    reported. A task that fails fails the step; terminating the Dagster run cancels the
    Databricks run and every task in it."""
    key = task_key(table)
    try:
        run = workspace.jobs.get_run(shared.run_id, include_history=True)
        task = _attempt(run, shared, key)
        folder = TaskFolder.of(pipes_root, shared.run_id, task.run_id)
        context.log.info(f"following task {key} (task run {task.run_id}) of Databricks run {shared.run_id}")
        channel = _TaskChannel(workspace, folder, poll_seconds)
        with dg.open_pipes_session(context=context, context_injector=channel,
                                   message_reader=channel.reader(), extras=extras) as session:
            ended = _wait_until_done(workspace, shared.run_id, task.run_id, poll_seconds)
    except dg.DagsterExecutionInterruptedError:
        context.log.info(f"Dagster run terminated: cancelling Databricks run {shared.run_id}")
        workspace.jobs.cancel_run(shared.run_id)
        raise dg.Failure(f"Databricks run {shared.run_id} was cancelled because the Dagster run "
                         "was terminated") from None
    state = ended.state
    if state.result_state != jobs.RunResultState.SUCCESS:
        outcome = state.result_state or state.life_cycle_state
        raise dg.Failure(f"task {key} of Databricks run {shared.run_id} ended {outcome.value}: "
                         f"{state.state_message}")
    return dg.PipesClientCompletedInvocation(session, metadata={
        "Databricks Job Run ID": str(shared.run_id),
        "Databricks Job Run URL": dg.MetadataValue.url(run.run_page_url or ""),
        "Databricks task": f"{key} (task run {task.run_id})",
    # A task that reported nothing built nothing: no materialization stands in for it.
    }).get_materialize_result(implicit_materialization=False)


def _attempt(run: jobs.Run, shared: SharedRun, key: str) -> jobs.RunTask:
    """The table's task attempt in this Dagster run's execution of the Databricks run: the
    original run's, or the repair's (each repair gives the tasks it reruns new task run ids)."""
    kind = jobs.RepairHistoryItemType.ORIGINAL if shared.repair_id is None else jobs.RepairHistoryItemType.REPAIR
    ours = next((item for item in run.repair_history or []
                 if item.type == kind and (shared.repair_id is None or item.id == shared.repair_id)), None)
    candidates = [t for t in run.tasks or [] if t.task_key == key
                  and (ours is None or t.run_id in (ours.task_run_ids or []))]
    if not candidates:
        raise dg.Failure(f"Databricks run {shared.run_id} has no task {key} for this Dagster run: "
                         "it was started or repaired without it")
    task = max(candidates, key=lambda t: t.attempt_number or 0)
    if task.state.life_cycle_state.value not in _ACTIVE and task.state.result_state == jobs.RunResultState.SUCCESS:
        raise dg.Failure(f"task {key} (task run {task.run_id}) of Databricks run {shared.run_id} "
                         "already succeeded without this step: it is not this Dagster run's")
    return task


def abort_tasks(context: dg.AssetExecutionContext, workspace: WorkspaceClient, shared: SharedRun,
                tables: list[str], pipes_root: str, reason: str) -> None:
    """Tell the tasks of `tables` in the run that are still waiting that their context will
    never come (their steps failed, or Dagster will not run them). They end FAILED with
    `reason` instead of waiting `context_wait_seconds`."""
    keys = {task_key(t) for t in tables}
    try:
        run = workspace.jobs.get_run(shared.run_id)
        for task in _latest_attempts(run).values():
            if task.task_key in keys and task.state.life_cycle_state.value in _ACTIVE:
                _put(workspace, TaskFolder.of(pipes_root, shared.run_id, task.run_id).abort, reason.encode())
    except Exception as error:  # the step's own failure is the one to report
        context.log.warning(f"could not tell the tasks of {sorted(keys)} not to wait: {error}")


def _latest_attempts(run: jobs.Run) -> dict[str, jobs.RunTask]:
    """Task key -> its latest attempt: `runs/get` lists every attempt of a repaired task."""
    latest: dict[str, jobs.RunTask] = {}
    for task in run.tasks or []:
        if task.task_key not in latest or (task.attempt_number or 0) >= (latest[task.task_key].attempt_number or 0):
            latest[task.task_key] = task
    return latest


def _wait_until_done(workspace: WorkspaceClient, run_id: int, task_run_id: int, poll_seconds: float) -> jobs.RunTask:
    while True:
        run = workspace.jobs.get_run(run_id)
        task = next(t for t in run.tasks if t.run_id == task_run_id)
        if task.state.life_cycle_state.value not in _ACTIVE:
            return task
        time.sleep(poll_seconds)


def _put(workspace: WorkspaceClient, path: str, content: bytes) -> None:
    if path.startswith("/Volumes/"):
        workspace.files.upload(path, io.BytesIO(content), overwrite=True)
    else:
        workspace.dbfs.put(path, contents=base64.b64encode(content).decode(), overwrite=True)


def _remove(workspace: WorkspaceClient, folder: TaskFolder) -> None:
    """Delete a task attempt's folder once its session is over (best effort: it is small)."""
    try:
        if folder.path.startswith("/Volumes/"):
            for directory in (folder.messages, folder.path):
                for entry in workspace.files.list_directory_contents(directory):
                    if not entry.is_directory:
                        workspace.files.delete(entry.path)
                workspace.files.delete_directory(directory)
        else:
            workspace.dbfs.delete(folder.path, recursive=True)
    except DatabricksError:
        pass


class _TaskChannel(dg.PipesContextInjector):
    """The task folder as a Pipes channel: the context file, and a message reader of the
    folder's `messages` (DBFS, or a volume for serverless)."""

    def __init__(self, workspace: WorkspaceClient, folder: TaskFolder, poll_seconds: float):
        self.workspace, self.folder, self.poll_seconds = workspace, folder, poll_seconds

    @contextmanager
    def inject_context(self, context_data) -> Iterator[dict]:
        _put(self.workspace, self.folder.context, json.dumps(context_data).encode())
        try:
            yield {"path": self.folder.context}
        finally:
            _remove(self.workspace, self.folder)

    def no_messages_debug_text(self) -> str:
        return f"the task reads its context from {self.folder.context}"

    def reader(self) -> dg.PipesMessageReader:
        folder, workspace = self.folder, self.workspace
        on_volume = folder.path.startswith("/Volumes/")
        base = PipesUnityCatalogVolumesMessageReader if on_volume else PipesDbfsMessageReader

        class _FolderReader(base):
            @contextmanager
            def get_params(self) -> Iterator[dict]:
                if on_volume:
                    workspace.files.create_directory(folder.messages)
                else:
                    workspace.dbfs.mkdirs(folder.messages)
                yield {"path": folder.messages,
                       PipesBlobStoreMessageWriter.INCLUDE_STDIO_IN_MESSAGES_KEY: True}

        if on_volume:
            return _FolderReader(client=workspace, volume_path=folder.path, interval=self.poll_seconds,
                                 include_stdio_in_messages=True)
        return _FolderReader(client=workspace, interval=self.poll_seconds, include_stdio_in_messages=True)
