"""`make update`: build what changed since the last build through Dagster, and only that.
`python -m scripts.update --full-refresh` rebuilds every table from all its inputs instead.

It records the sources' new versions (new landing files, new external table versions), as the
observation sensor would. Then it runs, through Dagster, each unpartitioned table with an input
newer than its last build, and then the daily tables for only the days that those builds' new
rows touched (platform_assets/touched_days.py): one run per range of consecutive days.
"""

from __future__ import annotations

import argparse
import sys

import dagster as dg

from jobs.registry import build_order, discover
from jobs.table import Table
from platform_assets.definitions import setting
from platform_assets.sources import landing_key
from platform_assets.table_assets import table_key
from platform_assets.touched_days import EVERY_DAY, days_touched, metadata_values, union
from resources.paths import LOCAL_DIR
from scripts.progress import execute_with_progress, observe_sources
from scripts.runs import cli_range, every_day, format_table_runs, full_history, table_runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full-refresh", action="store_true",
                        help="rebuild every table over every day from all its inputs")
    full_refresh = parser.parse_args().full_refresh
    catalog = setting("PLATFORM_CATALOG", "main")
    tables = discover().tables
    log = LOCAL_DIR / "update.log"
    log.write_text("")
    daily = [name for name in build_order(tables) if tables[name].partitions is not None]
    with dg.DagsterInstance.get() as instance:
        observe_sources(instance)
        built = []
        if full_refresh:
            for selection, days in full_history():
                built += _run(instance, selection, days, log, full_refresh=True)
            print()
            print(format_table_runs(built))
            return 0
        stale = stale_unpartitioned(instance, tables, catalog)
        if stale:
            built += _run(instance, _selection(catalog, stale), None, log)
        # Worked out after the unpartitioned tables ran: their reports say which days changed.
        for days in days_to_rebuild(instance, tables, catalog):
            built += _run(instance, _selection(catalog, daily), days, log)
        if not built:
            print("nothing changed since the last build")
            return 0
        print()
        print(format_table_runs(built))
    return 0


def _run(instance: dg.DagsterInstance, selection: str, days: str | None, log, full_refresh: bool = False) -> list:
    """Materialize `selection` (for `days`) in this process, with progress; its table runs."""
    run = execute_with_progress(instance, selection, days, log, full_refresh)
    if run is None or run.status != dg.DagsterRunStatus.SUCCESS:
        sys.exit(f"the run failed; Dagster's output is in {log}")
    return table_runs(instance, run.run_id)


def stale_unpartitioned(instance: dg.DagsterInstance, tables: dict[str, Table], catalog: str) -> list[str]:
    """The unpartitioned tables with an input newer than their last build (or never built), and
    the unpartitioned tables reading those, in build order."""
    stale: list[str] = []
    for name in build_order(tables):
        table = tables[name]
        if table.partitions is not None:
            continue
        built = _latest_id(instance, table_key(catalog, name), materialized=True)
        inputs = [table_key(catalog, n) for n in table.table_inputs.values()] + [
            landing_key(d) for d in table.landing_datasets]
        if built is None or any(n in stale for n in table.table_inputs.values()) or any(
                (_latest_id(instance, key) or 0) > built for key in inputs):
            stale.append(name)
    return stale


def days_to_rebuild(instance: dg.DagsterInstance, tables: dict[str, Table], catalog: str) -> list[str]:
    """The CLI partition ranges (`first...last`) of the daily tables to build: the days that
    their unpartitioned inputs touched since the daily table's last build, or every day."""
    touched = []
    for name, table in tables.items():
        if table.partitions is None:
            continue
        key = table_key(catalog, name)
        built = _latest_id(instance, key, materialized=True)
        if built is None:
            return [every_day()]
        for source in table.table_inputs.values():
            if source in tables and tables[source].partitions is not None:
                continue
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=table_key(catalog, source), after_storage_id=built), limit=1000,
            ).records
            touched += [days_touched(metadata_values(r), name) for r in records]
            if source not in tables and (_latest_id(instance, table_key(catalog, source)) or 0) > built:
                touched.append(EVERY_DAY)  # an external table's new version
    ranges = union(touched)
    if ranges is EVERY_DAY:
        return [every_day()]
    return [cli_range(r) for r in ranges]


def _latest_id(instance: dg.DagsterInstance, key: dg.AssetKey, materialized: bool = False) -> int | None:
    """The storage id of the asset's latest materialization, or (unless `materialized`) its
    latest observation if it has no materialization."""
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1).records
    if not records and not materialized:
        records = instance.fetch_observations(dg.AssetRecordsFilter(asset_key=key), limit=1).records
    return records[0].storage_id if records else None


def _selection(catalog: str, names: list[str]) -> str:
    return ",".join(table_key(catalog, name).to_user_string() for name in names)


if __name__ == "__main__":
    sys.exit(main())
