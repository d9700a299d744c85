"""Automation at several hundred tables, declared as a user declares them
(scripts/scale_tables.py): one source lands, and exactly the tables downstream of it are
requested, layer after layer, each automation sensor evaluated over its own tables with its
own cursor, as the daemon does. The requested tables' runs are recorded, not executed."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import dagster as dg
import pytest

from platform_assets.automation_sensors import DAGSTER_MAX_PER_SENSOR
from platform_assets.definitions import build_definitions
from platform_assets.sources import DATA_VERSION_TAG
from platform_assets.table_assets import table_key
from scripts.scale_tables import ScaleTable, declare_tables, feeds

COUNT = 400  # four layers of 100, the second and fourth daily
WEEK = ("2025-06-02", "2025-06-09")
PACKAGE = "scale_tables_under_test"


@dataclass
class Platform:
    """The generated tables' definitions on an instance of their own, ticked by hand."""

    defs: dg.Definitions
    tables: list[ScaleTable]
    instance: dg.DagsterInstance = field(default_factory=dg.DagsterInstance.ephemeral)
    cursors: dict[str, object] = field(default_factory=dict)

    @property
    def sensors(self) -> list[dg.AutomationConditionSensorDefinition]:
        return [s for s in self.defs.sensors if isinstance(s, dg.AutomationConditionSensorDefinition)]

    def tick(self) -> dict[str, set[str | None]]:
        """One round of every automation sensor: the days requested per table (None: the table)."""
        requested = {}
        for sensor in self.sensors:
            result = dg.evaluate_automation_conditions(
                self.defs, self.instance, asset_selection=sensor.asset_selection, cursor=self.cursors.get(sensor.name))
            self.cursors[sensor.name] = result.cursor
            for table in self.tables:
                key = table_key("main", table.name)
                if result.get_num_requested(key):
                    requested[table.name] = set(result.get_requested_partitions(key))
        return requested

    def record_runs(self, built: dict[str, set[str | None]]) -> None:
        """What the runs of these tables (and days) leave in the instance: a materialization per
        day, and their checks passed."""
        checks = self.defs.resolve_asset_graph().asset_check_keys
        for name, days in built.items():
            key = table_key("main", name)
            for day in days:
                self.instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=day))
            for check in (c for c in checks if c.asset_key == key):
                self.instance.report_runless_asset_event(
                    dg.AssetCheckEvaluation(asset_key=key, check_name=check.name, passed=True))

    def land(self, feed: str, version: str) -> None:
        self.instance.report_runless_asset_event(
            dg.AssetObservation(asset_key=table_key("main", feed), tags={DATA_VERSION_TAG: version}))


def every_day() -> set[str]:
    return {str(day) for day in dg.DailyPartitionsDefinition(start_date=WEEK[0], end_date=WEEK[1]).get_partition_keys()}


def expected_waves(tables: list[ScaleTable], feed: str) -> list[dict[str, set[str | None]]]:
    """What a new version of `feed` starts, tick after tick, worked out from the declarations:
    a table runs once any input ("any") or every input ("all") was rebuilt in the previous
    wave; cron and by-hand tables do not run, nor what only they feed."""
    waves, updated = [], {feed}
    while True:
        wave = {
            t.name: every_day() if t.daily else {None} for t in tables
            if (t.trigger == "any" and updated & set(t.inputs)) or (t.trigger == "all" and set(t.inputs) <= updated)
        }
        if not wave:
            return waves
        waves.append(wave)
        updated = set(wave)


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Platform:
    root = tmp_path_factory.mktemp("scale")
    (root / PACKAGE).mkdir()
    (root / PACKAGE / "__init__.py").write_text("")
    tables = declare_tables(root / PACKAGE, COUNT, WEEK)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(root))
        patch.setenv("PLATFORM_AUTOMATION_TABLES_PER_SENSOR", "100")
        platform = Platform(build_definitions(tables_package=PACKAGE), tables)
        # Everything built once, every feed seen: then the first round only sets a baseline.
        platform.record_runs({t.name: every_day() if t.daily else {None} for t in tables})
        for feed in feeds(COUNT):
            platform.land(feed, "0")
        assert platform.tick() == {}
        yield platform
        sys.modules.pop(PACKAGE, None)


def test_the_tables_are_split_into_sensors_within_dagsters_limit(platform):
    targets = [set(sensor.asset_selection.resolve(platform.defs.resolve_asset_graph())) for sensor in platform.sensors]
    assert len(targets) == COUNT // 100
    assert max(len(target) for target in targets) <= DAGSTER_MAX_PER_SENSOR
    every_table = {table_key("main", t.name) for t in platform.tables}
    assert set().union(*targets) == every_table and sum(map(len, targets)) == len(every_table)


def test_a_landed_feed_starts_exactly_its_downstream_tables_layer_after_layer(platform):
    feed = "feeds.feed_03"
    expected = expected_waves(platform.tables, feed)
    assert len(expected) == 4, "the feed's readers, then one layer after another"

    platform.land(feed, "1")
    for layer, wave in enumerate(expected):
        requested = platform.tick()
        assert requested == wave, f"layer {layer}"
        assert {name.split(".")[0] for name in requested} == {f"layer_{layer:03d}"}
        assert platform.tick() == {}, "requested once, and nothing more before its run lands"
        platform.record_runs(requested)
    assert platform.tick() == {}
