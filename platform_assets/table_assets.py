"""One Dagster asset per declared table, keyed `[catalog, schema, table]`, grouped by schema."""

import dagster as dg

from jobs.table import Table
from platform_assets.automation import automation_condition
from platform_assets.sources import landing_key
from resources.runner import TableRunner

# Every table job takes a slot of this pool: dagster.yaml caps the Spark jobs running at once
# across all runs (the executor's cap only counts the steps of one run).
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


def table_asset(table: Table, catalog: str) -> dg.AssetsDefinition:
    """The asset that materializes `table` by running its job through the `runner` resource."""
    inputs = sorted(set(table.table_inputs.values()))
    deps = [table_key(catalog, name) for name in inputs] + [
        landing_key(dataset) for dataset in sorted(table.landing_datasets)
    ]

    key = table_key(catalog, table.name)

    @dg.asset(
        key=key,
        group_name=table.schema,
        deps=deps,
        description=table.description or None,
        kinds={"spark", "delta"},
        metadata={"table": f"{catalog}.{table.name}", "declared_in": table.module},
        automation_condition=automation_condition(table.trigger, deps),
        pool=SPARK_POOL,
        check_specs=[
            dg.AssetCheckSpec(check.name, asset=key, blocking=check.blocking, description=check.__doc__)
            for check in table.checks
        ],
    )
    def _table(context: dg.AssetExecutionContext, runner: TableRunner) -> dg.MaterializeResult:
        pinned = {}
        for name in inputs:
            version = latest_delta_version(context.instance, table_key(catalog, name))
            if version is not None:
                pinned[name] = version
        context.log.info(f"reading inputs at Delta versions {pinned or 'latest'}")
        # The run's creation time: the same for retries of this step, larger for later runs.
        run = context.instance.get_run_record_by_id(context.run_id)
        write_version = int(run.create_timestamp.timestamp() * 1000)
        try:
            return runner.run(context, input_versions=pinned, write_version=write_version)
        except Exception as error:
            if not runner.is_retryable(error):
                raise
            retry = table.retry
            raise dg.RetryRequested(
                max_retries=retry.max_retries,
                seconds_to_wait=retry.delay_seconds * 2**context.retry_number,
            ) from error

    return _table


def table_assets(tables: dict[str, Table], catalog: str) -> list[dg.AssetsDefinition]:
    return [table_asset(table, catalog) for table in tables.values()]
