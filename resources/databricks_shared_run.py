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

import dataclasses
import hashlib
import io
import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
from dagster_databricks.pipes import PipesUnityCatalogVolumesMessageReader
from dagster_pipes import PipesBlobStoreMessageWriter
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import DatabricksError
from databricks.sdk.service import jobs

from jobs.contract import TaskFolder
from platform_assets.table_assets import table_key
from resources.databricks_job import task_key
from resources.databricks_run_state import read_run

# The Databricks run serving a Dagster run, as JSON. A re-execution may inherit its parent's
# tags, so the record names the Dagster run it was made for.
RUN_TAG = "platform/databricks_run"
TRACE_LINES = 20  # of a failed task's error trace, in the step's failure
_WAITING = ("PENDING", "QUEUED", "BLOCKED", "WAITING_FOR_RETRY")  # to start: it has written nothing
_ACTIVE = (*_WAITING, "RUNNING", "TERMINATING")


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
                  tables: list[str], job_parameters: dict[str, str], wheel: str) -> SharedRun:
    """The Databricks run serving this Dagster run, started (or repaired) by the first of its
    steps to ask; `tables` are the tables the Dagster run builds, `wheel` the job package its
    tasks must run. Steps that ask at once, on any machine, get the same run: `run-now` carries
    an idempotency token, and a repair that fails because another step's repair is under way
    adopts it."""
    instance, dagster_run_id = context.instance, context.run.run_id
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
    check_package(workspace, shared, wheel)
    instance.add_run_tags(dagster_run_id, {RUN_TAG: shared.to_tag()})
    return shared


def _repair(context: dg.AssetExecutionContext, workspace: WorkspaceClient, parent: SharedRun | None,
            keys: list[str], job_parameters: dict[str, str]) -> SharedRun | None:
    """For a re-execution of a run with a Databricks run (`parent`): repair that Databricks run
    if it has ended and holds every task asked for (or follow the repair another step of this
    Dagster run made); None otherwise."""
    if parent is None:
        return None
    try:
        run = workspace.jobs.get_run(parent.run_id, include_history=True)
    except DatabricksError as error:  # expired or deleted
        context.log.info(f"Databricks run {parent.run_id} cannot be read ({error}): starting a new run")
        return None
    repair_id = _adoptable_repair(run, parent, keys)
    if repair_id is None:
        if run.state.life_cycle_state.value in _ACTIVE or not set(keys) <= {t.task_key for t in run.tasks}:
            context.log.info(f"Databricks run {parent.run_id} cannot be repaired for {keys}: starting a new run")
            return None
        repairs = _repairs(run)
        try:
            repair_id = workspace.jobs.repair_run(
                parent.run_id, rerun_tasks=keys, latest_repair_id=repairs[-1] if repairs else None,
                # A repair without them would run with the job's defaults.
                job_parameters=job_parameters,
            ).response.repair_id
        except DatabricksError as error:
            # runs/repair takes no idempotency token: when its answer was lost and the SDK sent
            # it again, or another step of this run repaired first, the repair is there.
            repair_id = _adoptable_repair(workspace.jobs.get_run(parent.run_id, include_history=True),
                                          parent, keys)
            if repair_id is None:
                raise
            context.log.info(f"runs/repair failed ({error}), but repair {repair_id} of {keys} is under way")
    context.log.info(f"repairing Databricks run {parent.run_id} (repair {repair_id}): tasks {keys}")
    return SharedRun(context.run.run_id, parent.run_id, repair_id)


def _repairs(run: jobs.Run) -> list[int]:
    """The ids of a run's repairs, oldest first."""
    return [item.id for item in run.repair_history or [] if item.type == jobs.RepairHistoryItemType.REPAIR]


def _adoptable_repair(run: jobs.Run, parent: SharedRun, keys: list[str]) -> int | None:
    """A repair of exactly `keys`, made after the parent's execution, whose tasks still wait or
    run: one this Dagster run asked for (its answer lost) or another of its steps made. Its tasks
    wait for this run's steps, so it cannot have ended before they came."""
    repairs = _repairs(run)
    after = repairs[repairs.index(parent.repair_id) + 1:] if parent.repair_id in repairs else repairs
    tasks = {task.run_id: task for task in run.tasks or []}
    for item in run.repair_history or []:
        attempts = [tasks[i] for i in item.task_run_ids or [] if i in tasks]
        if (item.id in after and sorted(t.task_key for t in attempts) == sorted(keys)
                and all(t.state.life_cycle_state.value in _ACTIVE for t in attempts)):
            return item.id
    return None


def check_package(workspace: WorkspaceClient, shared: SharedRun, wheel: str) -> None:
    """Fail, cancelling the Databricks run, if its tasks do not run `wheel`: the job was reset
    by other code (another version of this deployment) between this step's reset and its start.
    Serverless tasks name their wheel in the job's environment instead, which is not checked."""
    # Read now, and kept for the steps about to follow the run: their first read is this one.
    run = read_run(workspace, shared.run_id, 0)
    ours = _execution_task_ids(run, shared)
    foreign = sorted(task.task_key for task in run.tasks or [] if task.run_id in ours and task.libraries
                     and all(library.whl != wheel for library in task.libraries))
    if foreign:
        workspace.jobs.cancel_run(shared.run_id)
        raise dg.Failure(
            f"Databricks run {shared.run_id} of job {run.job_id} does not run this code's package {wheel} "
            f"(tasks {foreign}): other code reset the job meanwhile. The run was cancelled; run again "
            "once one version of the code is deployed to this deployment.")


def cancel_if_running(workspace: WorkspaceClient, dagster_run: dg.DagsterRun) -> int | None:
    """Cancel the Databricks run serving `dagster_run` if it is still going (its Dagster run
    ended: failed, terminated, or lost its run worker); return its id, or None."""
    shared = SharedRun.from_tags(dagster_run.tags)
    if shared is None or shared.dagster_run_id != dagster_run.run_id:
        return None
    run = workspace.jobs.get_run(shared.run_id)
    if run.state.life_cycle_state.value not in _ACTIVE:
        return None
    workspace.jobs.cancel_run(shared.run_id)
    return shared.run_id


def follow_task(context: dg.AssetExecutionContext, workspace: WorkspaceClient, shared: SharedRun,
                table: str, pipes_root: str, extras: dict, poll_seconds: float) -> dg.MaterializeResult:
    """Give the table's task its Pipes context and follow it until it ends; return what it
    reported. A task that fails fails the step; terminating the Dagster run cancels the
    Databricks run and every task in it."""
    key = task_key(table)
    try:
        run = read_run(workspace, shared.run_id, poll_seconds)
        if not _has_execution(run, shared):  # read before this run's start or repair
            run = read_run(workspace, shared.run_id, 0)
        task = _attempt(run, shared, key)
        folder = TaskFolder.of(pipes_root, shared.run_id, task.run_id)
        context.log.info(f"following task {key} (task run {task.run_id}) of Databricks run {shared.run_id}")
        channel = _TaskChannel(workspace, folder, poll_seconds)
        with dg.open_pipes_session(context=context, context_injector=channel,
                                   message_reader=channel.reader(), extras=extras) as session:
            ended = _wait_until_done(workspace, shared.run_id, task.run_id, poll_seconds, channel.started)
    except dg.DagsterExecutionInterruptedError:
        context.log.info(f"Dagster run terminated: cancelling Databricks run {shared.run_id}")
        workspace.jobs.cancel_run(shared.run_id)
        raise dg.Failure(f"Databricks run {shared.run_id} was cancelled because the Dagster run "
                         "was terminated") from None
    state = ended.state
    if state.result_state != jobs.RunResultState.SUCCESS:
        outcome = state.result_state or state.life_cycle_state
        raise dg.Failure(f"task {key} of Databricks run {shared.run_id} ended {outcome.value}: "
                         f"{failure_reason(workspace, ended.run_id, state)}")
    return dg.PipesClientCompletedInvocation(session, metadata={
        "Databricks Job Run ID": str(shared.run_id),
        "Databricks Job Run URL": dg.MetadataValue.url(run.run_page_url or ""),
        "Databricks task": f"{key} (task run {task.run_id})",
    # A task that reported nothing built nothing: no materialization stands in for it.
    }).get_materialize_result(implicit_materialization=False)


def _attempt(run: jobs.Run, shared: SharedRun, key: str) -> jobs.RunTask:
    """The table's task attempt in this Dagster run's execution of the Databricks run: the
    original run's, or the repair's (each repair gives the tasks it reruns new task run ids)."""
    ours = _execution_task_ids(run, shared)
    candidates = [t for t in run.tasks or [] if t.task_key == key and t.run_id in ours]
    if not candidates:
        raise dg.Failure(f"Databricks run {shared.run_id} has no task {key} for this Dagster run: "
                         "it was started or repaired without it")
    task = max(candidates, key=lambda t: t.attempt_number or 0)  # a retry within the execution
    if task.state.life_cycle_state.value not in _ACTIVE and task.state.result_state == jobs.RunResultState.SUCCESS:
        raise dg.Failure(f"task {key} (task run {task.run_id}) of Databricks run {shared.run_id} "
                         "already succeeded without this step: it is not this Dagster run's")
    return task


def _has_execution(run: jobs.Run, shared: SharedRun) -> bool:
    try:
        _execution_task_ids(run, shared)
    except dg.Failure:
        return False
    return True


def _execution_task_ids(run: jobs.Run, shared: SharedRun) -> set[int]:
    """The task run ids of this Dagster run's execution: `runs/get` lists every attempt of every
    task in no set order, and `attempt_number` counts retries only, so `repair_history` (with
    `include_history`) is what says which attempt belongs to which execution."""
    kind = jobs.RepairHistoryItemType.ORIGINAL if shared.repair_id is None else jobs.RepairHistoryItemType.REPAIR
    for item in run.repair_history or []:
        if item.type == kind and (shared.repair_id is None or item.id == shared.repair_id):
            return set(item.task_run_ids or [])
    if shared.repair_id is None and not run.repair_history:  # never repaired: every task is ours
        return {task.run_id for task in run.tasks or []}
    raise dg.Failure(f"Databricks run {shared.run_id} has no execution "
                     f"{'original' if shared.repair_id is None else shared.repair_id} in its repair history")


def failure_reason(workspace: WorkspaceClient, task_run_id: int, state: jobs.RunState) -> str:
    """Why a task run failed: `runs/get` says only how it ended, `runs/get-output` of the task
    run carries the error and the end of its trace."""
    try:
        output = workspace.jobs.get_run_output(task_run_id)
    except DatabricksError as error:
        return f"{state.state_message} (its output cannot be read: {error})"
    trace = "\n".join((output.error_trace or "").rstrip().splitlines()[-TRACE_LINES:])
    return "\n".join(part for part in (state.state_message, output.error, trace) if part)


def abort_tasks(context: dg.AssetExecutionContext, workspace: WorkspaceClient, shared: SharedRun,
                tables: list[str], pipes_root: str, reason: str) -> None:
    """Tell the tasks of `tables` in the run that are still waiting that their context will
    never come (their steps failed, or Dagster will not run them). They end FAILED with
    `reason` instead of waiting `context_wait_seconds`."""
    keys = {task_key(t) for t in tables}
    try:
        run = workspace.jobs.get_run(shared.run_id, include_history=True)
        ours = _execution_task_ids(run, shared)
        for task in run.tasks or []:
            if task.run_id in ours and task.task_key in keys and task.state.life_cycle_state.value in _ACTIVE:
                _put(workspace, TaskFolder.of(pipes_root, shared.run_id, task.run_id).abort, reason.encode())
    except Exception as error:  # the step's own failure is the one to report
        context.log.warning(f"could not tell the tasks of {sorted(keys)} not to wait: {error}")


def _wait_until_done(workspace: WorkspaceClient, run_id: int, task_run_id: int, poll_seconds: float,
                     started: threading.Event) -> jobs.RunTask:
    """The task run once it has ended; `started` is set once it no longer waits to start."""
    while True:
        run = read_run(workspace, run_id, poll_seconds)
        task = next(t for t in run.tasks if t.run_id == task_run_id)
        if task.state.life_cycle_state.value not in _WAITING:
            started.set()
        if task.state.life_cycle_state.value not in _ACTIVE:
            return task
        time.sleep(poll_seconds)


def _put(workspace: WorkspaceClient, path: str, content: bytes) -> None:
    workspace.files.upload(path, io.BytesIO(content), overwrite=True)


def _remove(workspace: WorkspaceClient, folder: TaskFolder) -> None:
    """Delete a task attempt's folder once its session is over (best effort: it is small)."""
    try:
        for directory in (folder.messages, folder.path):
            for entry in workspace.files.list_directory_contents(directory):
                if not entry.is_directory:
                    workspace.files.delete(entry.path)
            workspace.files.delete_directory(directory)
    except DatabricksError:
        pass


class _TaskChannel(dg.PipesContextInjector):
    """The task folder, on the Pipes volume, as a Pipes channel: the context file, and a
    message reader of the folder's `messages`."""

    def __init__(self, workspace: WorkspaceClient, folder: TaskFolder, poll_seconds: float):
        self.workspace, self.folder, self.poll_seconds = workspace, folder, poll_seconds
        # Set once the task runs: until then the reader asks for no messages, since a task
        # waiting to start (for a cluster, or behind the tasks it reads) has written none.
        self.started = threading.Event()

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
        folder, workspace, started = self.folder, self.workspace, self.started

        class _FolderReader(PipesUnityCatalogVolumesMessageReader):
            @contextmanager
            def get_params(self) -> Iterator[dict]:
                workspace.files.create_directory(folder.messages)
                yield {"path": folder.messages,
                       PipesBlobStoreMessageWriter.INCLUDE_STDIO_IN_MESSAGES_KEY: True}

            def download_messages_chunk(self, index: int, params: dict) -> str | None:
                return super().download_messages_chunk(index, params) if started.is_set() else None

        return _FolderReader(client=workspace, volume_path=folder.path, interval=self.poll_seconds,
                             include_stdio_in_messages=True)
