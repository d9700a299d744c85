"""Sources the platform reads but does not write: their versions, observed without Spark."""

import json
import os
import time

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake

from jobs.table import ExternalTable
from platform_assets.definitions import build_definitions
from platform_assets.source_sensor import source_sensor
from platform_assets.sources import DATA_VERSION_TAG, Source, landing_key
from resources.landing_area import LandingArea

NATION = Source(key=dg.AssetKey(["main", "ingest", "nation"]), table=ExternalTable("ingest.nation"))
ORDERS = Source(key=landing_key("orders"), dataset="orders")


class Sensor:
    """The observation sensor over one landing directory, ticked by hand with its cursor."""

    def __init__(self, landing: LandingArea, sources: list[Source], instance=None):
        self.landing, self.definition = landing, source_sensor(sources, interval_seconds=10)
        self.instance = instance or dg.DagsterInstance.ephemeral()
        self.cursor = None

    def tick(self) -> dict[str, str]:
        """Run one evaluation, record its observations; return {asset: new data version}."""
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources={"landing": self.landing}
        )
        result = self.definition(context)
        self.cursor = result.cursor
        for event in result.asset_events:
            self.instance.report_runless_asset_event(event)
        return {e.asset_key.to_user_string(): e.tags[DATA_VERSION_TAG] for e in result.asset_events}


@pytest.fixture
def landing(tmp_path) -> LandingArea:
    return LandingArea(path=str(tmp_path), settle_seconds=0)


def write_nation(landing: LandingArea, names: list[str]) -> None:
    table = pa.table({"n_nationkey": list(range(len(names))), "n_name": names})
    write_deltalake(f"{landing.path}/ingest/nation", table, mode="overwrite")


def test_each_new_delta_version_of_an_external_table_is_observed_once(landing):
    sensor = Sensor(landing, [NATION])
    assert sensor.tick() == {}, "no table yet: nothing to observe"

    write_nation(landing, ["ALGERIA"])
    assert sensor.tick() == {"main/ingest/nation": "0"}
    assert sensor.tick() == {}

    write_nation(landing, ["ALGERIA", "ARGENTINA"])
    write_nation(landing, ["ALGERIA", "ARGENTINA", "BRAZIL"])
    assert sensor.tick() == {"main/ingest/nation": "2"}

    observation = sensor.instance.fetch_observations(NATION.key, limit=1).records[0]
    metadata = observation.event_log_entry.asset_observation.metadata
    assert metadata["delta_version"].value == 2
    assert metadata["operation"].value == "WRITE"


def test_a_landing_file_set_is_a_new_version_when_its_files_change(landing):
    sensor = Sensor(landing, [ORDERS])
    orders = os.path.join(landing.path, "orders")
    os.makedirs(orders)
    write_parquet(os.path.join(orders, "orders.1.parquet"))
    first = sensor.tick()["landing/orders"]
    assert sensor.tick() == {}

    write_parquet(os.path.join(orders, "orders.2.parquet"))
    second = sensor.tick()["landing/orders"]
    assert second != first


def test_a_file_set_still_being_written_waits_until_it_settles(tmp_path):
    landing = LandingArea(path=str(tmp_path), settle_seconds=60)
    sensor = Sensor(landing, [ORDERS])
    os.makedirs(tmp_path / "orders")
    write_parquet(str(tmp_path / "orders" / "orders.1.parquet"))
    assert sensor.tick() == {}

    settled = time.time() - 120
    os.utime(tmp_path / "orders" / "orders.1.parquet", (settled, settled))
    assert set(sensor.tick()) == {"landing/orders"}


def test_an_unreadable_source_is_logged_and_does_not_hide_the_others(landing, capfd):
    write_nation(landing, ["ALGERIA"])
    broken = ExternalTable("ingest.broken")
    os.makedirs(f"{landing.path}/ingest/broken/_delta_log")
    with open(f"{landing.path}/ingest/broken/_delta_log/00000000000000000000.json", "w") as log:
        log.write("not json\n")
    sensor = Sensor(landing, [Source(key=dg.AssetKey(["main", "ingest", "broken"]), table=broken), NATION])

    assert sensor.tick() == {"main/ingest/nation": "0"}
    assert "cannot observe main/ingest/broken" in capfd.readouterr().err


def test_a_restarted_sensor_neither_repeats_nor_misses_a_version(landing):
    write_nation(landing, ["ALGERIA"])
    sensor = Sensor(landing, [NATION])
    assert sensor.tick() == {"main/ingest/nation": "0"}

    # A new sensor on the same instance with the stored cursor: the daemon after a restart.
    restarted = Sensor(landing, [NATION], instance=sensor.instance)
    restarted.cursor = sensor.cursor
    assert restarted.tick() == {}
    write_nation(landing, ["ALGERIA", "ARGENTINA"])
    assert restarted.tick() == {"main/ingest/nation": "1"}


def test_a_first_tick_takes_the_versions_already_recorded_as_seen(landing):
    write_nation(landing, ["ALGERIA"])
    earlier = Sensor(landing, [NATION])
    earlier.tick()

    # Sensor state reset (or a new sensor name): the instance still knows version 0.
    fresh = Sensor(landing, [NATION], instance=earlier.instance)
    assert fresh.tick() == {}
    assert json.loads(fresh.cursor) == {"main/ingest/nation": "0"}


def test_the_code_location_observes_every_landing_dataset_and_external_table():
    defs = build_definitions()
    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    customers = specs["main/bronze/customers"]
    assert {dep.asset_key.to_user_string() for dep in customers.deps} == {
        "landing/customer", "main/ingest/nation"
    }
    sensors = {sensor.name: sensor for sensor in defs.sensors}
    assert set(sensors) == {"observe_sources", "table_automation"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())
    # The shipped interval: a source commit's run starts about 6 s after it (docs/benchmarks.md).
    assert {s.minimum_interval_seconds for s in sensors.values()} == {4}


def write_parquet(path: str) -> None:
    pq.write_table(pa.table({"o_orderkey": [1, 2]}), path)


