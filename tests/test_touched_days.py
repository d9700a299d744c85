"""Automation rebuilds only the days of a daily table that its unpartitioned inputs' new rows
touched, as their materializations report (BuildReport.touched_days)."""

import dagster as dg
import pytest

from jobs.contract import TOUCHED_DAYS_KEY
from jobs.table import WhenAnyInputUpdates
from platform_assets.automation import automation_condition
from platform_assets.gates import InputEvents
from platform_assets.touched_days import TouchedDays

DAYS = dg.DailyPartitionsDefinition(start_date="1998-07-01", end_date="1998-07-31")
REPORTS: dict[str, object] = {}  # what the next run of each input reports, by table


def unpartitioned_input(name: str) -> dg.AssetsDefinition:
    @dg.asset(name=name)
    def _input() -> dg.MaterializeResult:
        report = REPORTS.pop(name, None)
        return dg.MaterializeResult(metadata={} if report is None else {TOUCHED_DAYS_KEY: dg.MetadataValue.json(report)})

    return _input


orders, customers = unpartitioned_input("orders"), unpartitioned_input("customers")
inputs = (dg.AssetKey("orders"), dg.AssetKey("customers"))
EVENTS = InputEvents(materialized=[*inputs, dg.AssetKey("silver"), dg.AssetKey("gold")])


@dg.asset(partitions_def=DAYS, deps=inputs, automation_condition=automation_condition(
    WhenAnyInputUpdates(), list(inputs), EVENTS, TouchedDays("silver.order_lines", inputs)))
def silver() -> None:
    pass


@dg.asset(partitions_def=DAYS, deps=[silver],
          automation_condition=automation_condition(WhenAnyInputUpdates(), [silver.key], EVENTS))
def gold() -> None:
    pass


GRAPH = [orders, customers, silver, gold]


class Ticks:
    def __init__(self):
        self.instance, self.cursor = dg.DagsterInstance.ephemeral(), None
        self.run("orders", "customers")
        assert self.tick() == {}

    def run(self, *names: str) -> None:
        job = dg.Definitions(assets=GRAPH).resolve_implicit_global_asset_job_def()
        assert job.execute_in_process(asset_selection=[dg.AssetKey(n) for n in names], instance=self.instance).success

    def tick(self) -> dict[str, list[str]]:
        """One evaluation: the partitions requested per daily table."""
        result = dg.evaluate_automation_conditions(GRAPH, self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        return {key.to_user_string(): sorted(result.get_requested_partitions(key))
                for key in (silver.key, gold.key) if result.get_num_requested(key)}


@pytest.fixture
def ticks():
    REPORTS.clear()
    return Ticks()


def test_new_rows_rebuild_only_the_days_they_touched_downstream_too(ticks):
    REPORTS["orders"] = {"silver.order_lines": [["1998-07-03", "1998-07-05"], ["1998-07-20", "1998-07-21"]]}
    ticks.run("orders")

    days = ["1998-07-03", "1998-07-04", "1998-07-20"]
    assert ticks.tick() == {"silver": days, "gold": days}
    assert ticks.tick() == {}


def test_an_input_rebuilt_whole_rebuilds_every_day(ticks):
    ticks.run("customers")  # no report of touched days: every day

    assert len(ticks.tick()["silver"]) == 30


def test_an_ingestion_that_found_nothing_new_rebuilds_nothing(ticks):
    REPORTS["orders"] = {"silver.order_lines": []}
    ticks.run("orders")

    assert ticks.tick() == {}


def test_days_touched_by_several_runs_between_ticks_are_all_rebuilt(ticks):
    REPORTS["orders"] = {"silver.order_lines": [["1998-07-03", "1998-07-04"]]}
    ticks.run("orders")
    REPORTS["orders"] = {"silver.order_lines": [["1998-07-10", "1998-07-11"]]}
    ticks.run("orders")

    assert ticks.tick()["silver"] == ["1998-07-03", "1998-07-10"]
