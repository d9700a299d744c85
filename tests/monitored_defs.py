"""`tests/test_run_monitoring.py`'s code location: one asset in the platform's `spark_jobs` pool
that records its run worker's pid and then waits, and a sensor that requests a run of it for
each file a test drops in $MONITORED_TRIGGERS (named after the run's key; its text, if any, the
run's maximum runtime in seconds)."""

import os
import time
from pathlib import Path

import dagster as dg


@dg.asset(pool="spark_jobs")
def waits_for_ever(context: dg.AssetExecutionContext) -> None:
    # In process (in_process_executor): the step's pid is the run worker's.
    (Path(os.environ["MONITORED_TRIGGERS"]) / f"{context.run.run_id}.pid").write_text(str(os.getpid()))
    time.sleep(3600)


@dg.sensor(target=[waits_for_ever], minimum_interval_seconds=1, default_status=dg.DefaultSensorStatus.RUNNING)
def on_trigger_file():
    for trigger in sorted(Path(os.environ["MONITORED_TRIGGERS"]).glob("*.run")):
        max_runtime = trigger.read_text().strip()
        yield dg.RunRequest(run_key=trigger.stem, tags={"dagster/max_runtime": max_runtime} if max_runtime else {})


defs = dg.Definitions(assets=[waits_for_ever], sensors=[on_trigger_file], executor=dg.in_process_executor)
