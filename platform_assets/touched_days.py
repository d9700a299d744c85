"""Which days of a daily table need rebuilding after its unpartitioned inputs changed.

A table that ingests landing files reports, with each materialization, the days of each daily
table reading it that its new rows touch (`BuildReport.touched_days`, worked out by the job from
Delta's change data feed of its commit). Any other unpartitioned input (one rebuilt whole, such
as customers, or an external table such as the nations) touches every day. Automation
(`TouchedDays`) and `make update` read the same reports here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg

from jobs.contract import TOUCHED_DAYS_KEY, DayRange, day_ranges, touched_days_from_json

EVERY_DAY = None  # what days_touched() returns when it cannot narrow the days down


def days_touched(metadata: Mapping[str, Any], table: str) -> list[DayRange] | None:
    """The days of daily table `table` (schema.table) that one input materialization touched,
    from its metadata values; None for every day."""
    touched = touched_days_from_json(metadata.get(TOUCHED_DAYS_KEY))
    if touched is None or table not in touched:
        return EVERY_DAY
    return touched[table]


def union(touched: Iterable[list[DayRange] | None]) -> list[DayRange] | None:
    """The days any of several materializations touched, as the fewest ranges; None for every day."""
    days: set[dt.date] = set()
    for ranges in touched:
        if ranges is EVERY_DAY:
            return EVERY_DAY
        days |= _dates(ranges)
    return day_ranges(days)


def _dates(ranges: list[DayRange]) -> set[dt.date]:
    dates = set()
    for r in ranges:
        first, end = dt.date.fromisoformat(r.start), dt.date.fromisoformat(r.end)
        dates |= {first + dt.timedelta(days=n) for n in range((end - first).days)}
    return dates


def metadata_values(record) -> dict[str, Any]:
    """An event record's materialization metadata as plain values."""
    materialization = record.asset_materialization
    return {k: v.value for k, v in materialization.metadata.items()} if materialization else {}


@dataclass(frozen=True)
class TouchedDays(dg.AutomationCondition):
    """True for the days of daily table `table` that materializations of its unpartitioned
    `inputs` touched since the previous evaluation, except materializations by runs that also
    built this table (as Dagster's any_deps_updated ignores them).

    Dagster maps an unpartitioned input to every partition of a daily table, so its own
    conditions would rebuild every day. This condition runs in the code location (the sensor
    that evaluates it sets use_user_code_server).
    """

    table: str
    inputs: tuple[dg.AssetKey, ...]

    @property
    def name(self) -> str:  # part of the condition's id in the sensor's cursor: keep it stable
        return f"touched_days({self.table})"

    @property
    def description(self) -> str:
        return f"days of {self.table} that new rows of its unpartitioned inputs touch"

    def get_label(self) -> str:
        return "touched_days"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        after, upto = context.previous_max_storage_id, context.max_storage_id
        if context.candidate_subset.is_empty or after is None or upto is None:
            return dg.AutomationResult(context, true_subset=context.get_empty_subset())
        instance = context.asset_graph_view.instance
        touched = union(
            days_touched(metadata_values(record), self.table)
            for key in self.inputs
            for record in _materializations(instance, key, after, upto)
            if context.key not in _targets(instance, record.run_id)
        )
        if touched is EVERY_DAY:
            return dg.AutomationResult(context, true_subset=context.candidate_subset)
        days = {day.strftime(context.partitions_def.fmt) for day in _dates(touched)}
        touched_subset = context.candidate_subset.compute_intersection_with_partition_keys(days)
        return dg.AutomationResult(context, true_subset=touched_subset)


def _materializations(instance: dg.DagsterInstance, key: dg.AssetKey, after: int, upto: int) -> list:
    records, cursor = [], None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, after_storage_id=after, before_storage_id=upto + 1),
            limit=1000, cursor=cursor, ascending=True)
        records += page.records
        if not page.has_more:
            return records
        cursor = page.cursor


def _targets(instance: dg.DagsterInstance, run_id: str) -> set[dg.AssetKey]:
    run = instance.get_run_by_id(run_id)
    return set(run.asset_selection or ()) if run else set()
