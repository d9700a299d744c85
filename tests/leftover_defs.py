"""`tests/test_leftovers.py`'s code location: the platform's leftover sensors, and an asset that
starts a Databricks run (of the job in $LEFTOVER_JOB_ID, on the emulator at $DATABRICKS_HOST) and
records it on its Dagster run as a table step does; then it waits, or a downstream asset waits
for a slot of a pool that has none. A sensor requests a run for each file a test drops in
$LEFTOVER_TRIGGERS (named after the run's key; its text, the selection: `first` or `both`)."""

import os
import time
from pathlib import Path

import dagster as dg
from databricks.sdk import WorkspaceClient

from platform_assets.leftover_sensors import leftover_sensors
from resources.databricks_shared_run import RUN_TAG, SharedRun
from scripts.emulated_workspace import emulated_runner

TRIGGERS = Path(os.environ["LEFTOVER_TRIGGERS"])
EMPTY_POOL = "no_slots"  # the test sets its limit to 0


@dg.asset
def starts_a_databricks_run(context: dg.AssetExecutionContext) -> None:
    workspace = WorkspaceClient(host=os.environ["DATABRICKS_HOST"], token=os.environ["DATABRICKS_TOKEN"])
    started = workspace.jobs.run_now(int(os.environ["LEFTOVER_JOB_ID"])).run_id
    context.instance.add_run_tags(context.run.run_id, {RUN_TAG: SharedRun(context.run.run_id, started).to_tag()})
    # A step process of the multiprocess executor, as the platform's: its parent is the run worker.
    (TRIGGERS / f"{context.run.run_id}.pid").write_text(f"{os.getppid()} {started} {os.getpid()}")
    if context.run.tags.get("leftover/selection") == "first":
        time.sleep(600)  # the run worker dies meanwhile


@dg.asset(deps=[starts_a_databricks_run], pool=EMPTY_POOL)
def waits_for_a_pool_slot() -> None:
    pass


@dg.sensor(minimum_interval_seconds=1, default_status=dg.DefaultSensorStatus.RUNNING,
           target=[starts_a_databricks_run, waits_for_a_pool_slot])
def on_trigger_file():
    for trigger in sorted(TRIGGERS.glob("*.run")):
        selection = trigger.read_text().strip()
        keys = [starts_a_databricks_run.key] + ([waits_for_a_pool_slot.key] if selection == "both" else [])
        yield dg.RunRequest(run_key=trigger.stem, asset_selection=keys, tags={"leftover/selection": selection})


defs = dg.Definitions(
    assets=[starts_a_databricks_run, waits_for_a_pool_slot],
    sensors=[on_trigger_file, *leftover_sensors()],
    resources={"runner": emulated_runner(Path("/unused"), "/Volumes/main/landing/unused")},
    executor=dg.multiprocess_executor,
)
