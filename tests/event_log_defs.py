"""A toy code location for tests/test_event_log.py, in the platform's shape: an unpartitioned
table, and a daily table (with a check) that one run builds over a range of days."""

import os

import dagster as dg

DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-07-19")  # 200 days
ONE_RUN = dg.BackfillPolicy.single_run()  # the CLI builds a range of days in one run only


@dg.asset(backfill_policy=ONE_RUN)
def nation() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 25})


@dg.asset(
    partitions_def=DAYS,
    backfill_policy=ONE_RUN,
    deps=[nation],
    check_specs=[dg.AssetCheckSpec("has_rows", asset="daily_revenue")],
)
def daily_revenue(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    if os.getenv("TOY_DAILY_FAILS"):
        raise RuntimeError("the daily step fails, as asked")
    days = context.partition_keys
    return dg.MaterializeResult(
        # What the step worker, which stores these materializations, was told about batching.
        metadata={"days": len(days), "event_batch_size": os.getenv("DAGSTER_EVENT_BATCH_SIZE")},
        data_version=dg.DataVersion(f"{days[0]}..{days[-1]}"),
        check_results=[dg.AssetCheckResult(passed=True)],
    )


defs = dg.Definitions(assets=[nation, daily_revenue])
