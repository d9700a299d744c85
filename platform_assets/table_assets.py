"""One Dagster asset per declared table, keyed `[catalog, schema, table]`, grouped by schema."""

import functools
import warnings

import dagster as dg
from pydantic import Field

from jobs.contract import DayRange
from jobs.table import DailyPartitions, Table
from platform_assets.automation import automation_condition
from platform_assets.gates import InputEvents
from platform_assets.sources import landing_key
from platform_assets.touched_days import TouchedDays
from resources.runner import JobRequest, TableRunner

# Every table job on this machine's Spark takes a slot of this pool: dagster.yaml caps the Spark
# jobs running at once across all runs (the executor's cap only counts the steps of one run).
# Jobs that run elsewhere (Databricks) take none: their compute is not this machine's, and a
# task of a Databricks run must not wait for its step behind a local pool.
SPARK_POOL = "spark_jobs"


def table_key(catalog: str, name: str) -> dg.AssetKey:
    """`main` + `bronze.orders` -> AssetKey(["main", "bronze", "orders"])."""
    return dg.AssetKey([catalog, *name.split(".")])


def latest_delta_version(instance: dg.DagsterInstance, key: dg.AssetKey) -> int | None:
    """The Delta version the platform last wrote to the table, or last observed for an
    external table; None if there is neither."""
    event = instance.get_latest_materialization_event(key)
    if event is None:
        observed = instance.fetch_observations(dg.AssetRecordsFilter(asset_key=key), limit=1).records
        event = observed[0].event_log_entry if observed else None
    if event is None or event.asset_materialization is None and event.asset_observation is None:
        return None
    metadata = (event.asset_materialization or event.asset_observation).metadata
    value = metadata.get("delta_version")
    return None if value is None else int(value.value)


class TableConfig(dg.Config):
    """A table step's run config (the UI's launchpad, or the CLI's --config-json)."""

    full_refresh: bool = Field(default=False, description=(
        "Rebuild from all inputs: a table that ingests landing files ingests every file again, "
        "replacing its contents. Other tables are always rebuilt from all their inputs."))


# Built once and shared by every table: Dagster infers a config class's schema, and builds an
# asset's, for each asset it is given (about a millisecond a table).
TABLE_CONFIG_SCHEMA = TableConfig.to_fields_dict()
SINGLE_RUN = dg.BackfillPolicy.single_run()


@functools.cache
def daily_partitions(partitions: DailyPartitions | None) -> dg.DailyPartitionsDefinition | None:
    """One partitions definition per range of days, shared by the tables with that range."""
    if partitions is None:
        return None
    return dg.DailyPartitionsDefinition(start_date=partitions.start, end_date=partitions.end)


def table_asset(table: Table, catalog: str, events: InputEvents, unpartitioned_inputs: tuple[str, ...] = (),
                pool: str | None = SPARK_POOL) -> dg.AssetsDefinition:
    """The asset that materializes `table` by running its job through the `runner` resource.
    For a daily table, `unpartitioned_inputs` are the input tables built here and not
    partitioned by day."""
    inputs = sorted(set(table.table_inputs.values()))
    deps = [table_key(catalog, name) for name in inputs] + [
        landing_key(dataset) for dataset in sorted(table.landing_datasets)
    ]
    key = table_key(catalog, table.name)
    touched_days = None
    if table.partitions is not None and unpartitioned_inputs:
        touched_days = TouchedDays(table.name, tuple(table_key(catalog, name) for name in unpartitioned_inputs))

    def _table(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        runner: TableRunner = context.resources.runner
        config = TableConfig(**context.op_execution_context.op_config)
        pinned = {}
        for name in inputs:
            version = latest_delta_version(context.instance, table_key(catalog, name))
            if version is not None:
                pinned[name] = version
        context.log.info(f"reading inputs at Delta versions {pinned or 'latest'}")
        days = None
        if table.partitions is not None:
            window = context.partition_time_window
            days = DayRange(window.start.date().isoformat(), window.end.date().isoformat())
            context.log.info(f"building days {days.start} to {days.end} (exclusive)")
        # Retries of this step repeat the run's write; Delta commits it once.
        request = JobRequest(table=table.name, catalog=catalog, input_versions=pinned,
                             write_id=context.run.run_id, days=days, full_refresh=config.full_refresh)
        try:
            return runner.run(context, request)
        except Exception as error:
            if not runner.is_retryable(error):
                raise
            retry = table.retry
            raise dg.RetryRequested(
                max_retries=retry.max_retries,
                seconds_to_wait=retry.delay_seconds * 2**context.retry_number,
            ) from error

    spec = dg.AssetSpec(
        key,
        deps=deps,
        group_name=table.schema,
        description=table.description or None,
        kinds={"spark", "delta"},
        metadata={"table": f"{catalog}.{table.name}", "declared_in": table.module},
        automation_condition=automation_condition(table.trigger, deps, events, touched_days),
        partitions_def=daily_partitions(table.partitions),
    )
    # backfill_policy is a beta parameter in this Dagster release.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        # multi_asset of one spec: the same asset as @asset makes, a quarter cheaper to build.
        return dg.multi_asset(
            name="__".join(key.path),
            specs=[spec],
            pool=pool,
            # A range of days is one run (one replaceWhere); every table has the policy, so that
            # the CLI can run a selection of partitioned and unpartitioned tables with a range.
            backfill_policy=SINGLE_RUN,
            required_resource_keys={"runner"},
            config_schema=TABLE_CONFIG_SCHEMA,
            check_specs=[
                dg.AssetCheckSpec(check.name, asset=key, blocking=check.blocking, description=check.__doc__)
                for check in table.checks
            ],
        )(_table)


def table_assets(tables: dict[str, Table], catalog: str, events: dict[str, InputEvents],
                 pool: str | None = SPARK_POOL) -> list[dg.AssetsDefinition]:
    """The assets of `tables`; `events[name]` answers the gates of that table's condition (its
    automation sensor's, platform_assets/automation_sensors.py); `pool` the steps' pool."""

    def unpartitioned(table: Table) -> tuple[str, ...]:
        # Tables built here only: their materializations report the days they touched. An
        # external table's new version is an observation, which rebuilds every day.
        return tuple(sorted(name for name in set(table.table_inputs.values())
                            if name in tables and tables[name].partitions is None))

    return [table_asset(table, catalog, events[name], unpartitioned(table), pool) for name, table in tables.items()]

