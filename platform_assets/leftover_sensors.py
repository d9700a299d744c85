"""Nothing keeps running, or billing, after its Dagster run ends.

A step that follows its Databricks run cancels it when the Dagster run is terminated. Nobody is
left to do that when the run worker dies, or when the run is terminated while none of its steps
follows the Databricks run (they wait for a pool slot, or have not started): these sensors
cancel what such a run left running, on the run's failure or cancellation.
"""

import dagster as dg

from resources.runner import TableRunner

INTERVAL_SECONDS = 5


def _cancel_leftovers(context: dg.RunStatusSensorContext, runner: TableRunner) -> dg.SkipReason:
    cancelled = runner.cancel_leftovers(context.dagster_run)
    if cancelled is None:
        return dg.SkipReason(f"run {context.dagster_run.run_id} left nothing running")
    context.log.info(f"cancelled {cancelled}, left running by run {context.dagster_run.run_id}")
    return dg.SkipReason(f"cancelled {cancelled}")


def leftover_sensors() -> list[dg.SensorDefinition]:
    """One sensor per ending that can leave work running: failure and cancellation."""

    @dg.run_failure_sensor(name="cancel_leftovers_of_failed_runs", minimum_interval_seconds=INTERVAL_SECONDS,
                           default_status=dg.DefaultSensorStatus.RUNNING)
    def failed(context: dg.RunFailureSensorContext, runner: TableRunner):
        return _cancel_leftovers(context, runner)

    @dg.run_status_sensor(name="cancel_leftovers_of_cancelled_runs", run_status=dg.DagsterRunStatus.CANCELED,
                          minimum_interval_seconds=INTERVAL_SECONDS, default_status=dg.DefaultSensorStatus.RUNNING)
    def cancelled(context: dg.RunStatusSensorContext, runner: TableRunner):
        return _cancel_leftovers(context, runner)

    return [failed, cancelled]
