"""One Dagster asset per declared table, keyed `[catalog, schema, table]`, grouped by schema."""

import dagster as dg

from jobs.table import Table
from resources.runner import TableRunner


def table_key(catalog: str, name: str) -> dg.AssetKey:
    """`main` + `bronze.orders` -> AssetKey(["main", "bronze", "orders"])."""
    return dg.AssetKey([catalog, *name.split(".")])


def latest_delta_version(instance: dg.DagsterInstance, key: dg.AssetKey) -> int | None:
    """The Delta version written by the asset's latest materialization, if it has one."""
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get("delta_version")
    return None if value is None else int(value.value)


def table_asset(table: Table, catalog: str) -> dg.AssetsDefinition:
    """The asset that materializes `table` by running its job through the `runner` resource."""
    inputs = sorted(set(table.table_inputs.values()))

    @dg.asset(
        key=table_key(catalog, table.name),
        group_name=table.schema,
        deps=[table_key(catalog, name) for name in inputs],
        description=table.description or None,
        kinds={"spark", "delta"},
        metadata={"table": f"{catalog}.{table.name}", "declared_in": table.module},
    )
    def _table(context: dg.AssetExecutionContext, runner: TableRunner) -> dg.MaterializeResult:
        pinned = {}
        for name in inputs:
            version = latest_delta_version(context.instance, table_key(catalog, name))
            if version is not None:
                pinned[name] = version
        context.log.info(f"reading inputs at Delta versions {pinned or 'latest'}")
        return runner.run(context, input_versions=pinned)

    return _table


def table_assets(tables: dict[str, Table], catalog: str) -> list[dg.AssetsDefinition]:
    return [table_asset(table, catalog) for table in tables.values()]
