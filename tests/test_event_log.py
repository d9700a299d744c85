"""The instance's event log (platform_instance/event_log.py, named in dagster.yaml and in
instances/postgres.yaml), on SQLite and on PostgreSQL.

A run that builds a daily table over a range of days stores one planned event and one
materialization per day, in batches. The instance must still report every day the way the UI
shows it: materialized, failed when its run failed, materialized again once rebuilt.

Every run here is the real CLI (`dagster asset materialize`) on a temporary DAGSTER_HOME holding
the project's instance file, with the toy code location in tests/event_log_defs.py, and nothing
exported but DAGSTER_HOME (and for PostgreSQL, the PLATFORM_PG_* settings of an empty database):
whoever runs dagster gets batching without setting anything.
"""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as db
from dagster._core.definitions.data_version import extract_data_version_from_entry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.partition_status_cache import AssetPartitionStatus
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget
from dagster_graphql.test.utils import execute_dagster_graphql
from dagster_postgres import PostgresEventLogStorage
from dagster_postgres.utils import pg_url_from_config

from platform_instance.event_log import EVENT_BATCH_SIZE, BatchedPostgresEventLogStorage, BatchedSqliteEventLogStorage
from tests.event_log_defs import DAYS
from tests.instances import STORAGES, Home, new_home

PROJECT_DIR = Path(__file__).resolve().parents[1]
DAGSTER = Path(sys.executable).parent / "dagster"
TOY = "tests.event_log_defs"
NATION, DAILY = dg.AssetKey("nation"), dg.AssetKey("daily_revenue")
ALL_DAYS = DAYS.get_partition_keys()


def environment_of_a_user(home: Home, **env: str) -> dict[str, str]:
    """DAGSTER_HOME, and no DAGSTER_EVENT_BATCH_SIZE: this process has it, from importing
    platform_instance, but the processes dagster starts must get it from the instance file alone."""
    environment = {**os.environ, **home.env, "DAGSTER_HOME": str(home.path), "PYTHONPATH": str(PROJECT_DIR), **env}
    environment.pop("DAGSTER_EVENT_BATCH_SIZE", None)
    return environment


def materialize(home: Home, first_day: str, last_day: str, **env: str) -> subprocess.CompletedProcess:
    """Build every toy asset for the days first_day..last_day, in one run."""
    return subprocess.run(
        [DAGSTER, "asset", "materialize", "-m", TOY, "--select", "*",
         "--partition-range", f"{first_day}...{last_day}"],
        cwd=PROJECT_DIR, env=environment_of_a_user(home, **env), capture_output=True, text=True,
    )


def ui_partition_ranges(instance: dg.DagsterInstance) -> list[tuple[str, str, str]]:
    """The daily asset's partition bar, asked the way the UI asks: (status, first day, last day)."""
    query = """{ assetNodes(assetKeys: [{path: ["daily_revenue"]}]) { assetPartitionStatuses {
        ... on TimePartitionStatuses { ranges { status startKey endKey } } } } }"""
    target = ModuleTarget(module_name=TOY, attribute=None, working_directory=str(PROJECT_DIR),
                          location_name="toy")
    with WorkspaceProcessContext(instance, target) as workspace:
        result = execute_dagster_graphql(workspace.create_request_context(), query)
    [node] = result.data["assetNodes"]
    return [(r["status"], r["startKey"], r["endKey"]) for r in node["assetPartitionStatuses"]["ranges"]]


def statuses(instance: dg.DagsterInstance) -> dict[str, AssetPartitionStatus | None]:
    return instance.get_status_by_partition(DAILY, ALL_DAYS, DAYS)


@pytest.fixture(scope="module", params=STORAGES)
def built(request, tmp_path_factory):
    """An instance where one run built every toy asset over all 200 days."""
    home = new_home(tmp_path_factory.mktemp("built"), request.param, request)
    result = materialize(home, ALL_DAYS[0], ALL_DAYS[-1])
    assert result.returncode == 0, result.stderr[-5000:]
    with home.instance() as instance:
        yield instance


def test_the_instance_stores_events_with_the_batched_event_log(built):
    if isinstance(built.event_log_storage, PostgresEventLogStorage):
        assert type(built.event_log_storage) is BatchedPostgresEventLogStorage
    else:
        assert type(built.event_log_storage) is BatchedSqliteEventLogStorage
        assert Path(built.root_directory, "history", "runs", "index.db").exists()


@pytest.mark.parametrize("storage", STORAGES)
def test_opening_the_instance_turns_event_batching_on(tmp_path, request, storage):
    opened = subprocess.run(
        [sys.executable, "-c", "import os, dagster as dg; dg.DagsterInstance.get(); "
                               "print(os.environ['DAGSTER_EVENT_BATCH_SIZE'])"],
        env=environment_of_a_user(new_home(tmp_path, storage, request)), capture_output=True, text=True, check=True,
    )
    assert opened.stdout.strip() == str(EVENT_BATCH_SIZE)


def test_every_day_built_by_the_run_shows_materialized(built):
    assert built.get_materialized_partitions(DAILY) == set(ALL_DAYS)
    assert set(statuses(built).values()) == {AssetPartitionStatus.MATERIALIZED}
    assert ui_partition_ranges(built) == [("MATERIALIZED", ALL_DAYS[0], ALL_DAYS[-1])]


def test_the_latest_materialization_carries_its_metadata_and_data_version(built):
    latest = built.get_latest_materialization_event(DAILY).asset_materialization
    assert latest.partition == ALL_DAYS[-1]
    assert latest.metadata["days"].value == len(ALL_DAYS)
    # The step worker that stored the materializations batched them, though nobody exported it.
    assert latest.metadata["event_batch_size"].text == str(EVENT_BATCH_SIZE)
    assert built.get_latest_materialization_event(NATION).asset_materialization.metadata["rows"].value == 25

    data_version = f"{ALL_DAYS[0]}..{ALL_DAYS[-1]}"
    record = built.get_latest_data_version_record(DAILY, partition_key=ALL_DAYS[100])
    assert extract_data_version_from_entry(record.event_log_entry) == dg.DataVersion(data_version)
    # Every day's data version is also indexed (the asset_event_tags table).
    tags = built.get_event_tags_for_asset(DAILY)
    assert len(tags) == len(ALL_DAYS)
    assert {t["dagster/data_version"] for t in tags} == {data_version}


def test_the_check_planned_in_the_same_batch_as_the_days_is_recorded(built):
    check = dg.AssetCheckKey(DAILY, "has_rows")
    [execution] = built.event_log_storage.get_asset_check_execution_history(check, limit=1)
    assert execution.status.value == "SUCCEEDED"


def test_a_batch_leaves_the_storage_as_storing_its_events_one_by_one_does(built, tmp_path, request):
    """The whole run (planned events, check events, materializations, run events) stored by the
    stock event log one event at a time, and by ours in one batch: same rows."""
    run = built.get_runs(limit=1)[0]
    events = [record.event_log_entry for record in built.get_records_for_run(run.run_id).records]
    if isinstance(built.event_log_storage, PostgresEventLogStorage):
        new_database = request.getfixturevalue("postgres_database")
        one_by_one = PostgresEventLogStorage(postgres_url(new_database("one_by_one")))
        batched = BatchedPostgresEventLogStorage(postgres_url(new_database("batched")))
    else:
        one_by_one = SqliteEventLogStorage(str(tmp_path / "one_by_one"))
        batched = BatchedSqliteEventLogStorage(str(tmp_path / "batched"))
    for event in events:
        one_by_one.store_event(event)
    batched.store_event_batch(events)

    rows = stored_rows(batched, run.run_id)
    assert len(rows["run: event_logs"]) == len(events)
    assert rows == stored_rows(one_by_one, run.run_id)


def postgres_url(env: dict[str, str]) -> str:
    return pg_url_from_config({"postgres_db": {
        "hostname": env["PLATFORM_PG_HOST"], "port": env["PLATFORM_PG_PORT"], "db_name": env["PLATFORM_PG_DB"],
        "username": env["PLATFORM_PG_USER"], "password": env["PLATFORM_PG_PASSWORD"],
        "scheme": "postgresql+psycopg2"}})


@pytest.mark.parametrize("storage", STORAGES)
def test_failed_days_show_failed_until_rebuilt(tmp_path, request, storage):
    home = new_home(tmp_path, storage, request)
    failed_days = ALL_DAYS[10:60]
    failed = materialize(home, failed_days[0], failed_days[-1], TOY_DAILY_FAILS="1")
    assert failed.returncode != 0

    with home.instance() as instance:
        assert instance.get_runs(limit=1)[0].status == dg.DagsterRunStatus.FAILURE
        assert {day for day, status in statuses(instance).items() if status} == set(failed_days)
        assert set(statuses(instance)[day] for day in failed_days) == {AssetPartitionStatus.FAILED}
        assert ui_partition_ranges(instance) == [("FAILED", failed_days[0], failed_days[-1])]

        rebuilt = materialize(home, failed_days[5], failed_days[5])
        assert rebuilt.returncode == 0, rebuilt.stderr[-5000:]
        assert statuses(instance)[failed_days[5]] == AssetPartitionStatus.MATERIALIZED
        assert ui_partition_ranges(instance) == [
            ("FAILED", failed_days[0], failed_days[4]),
            ("MATERIALIZED", failed_days[5], failed_days[5]),
            ("FAILED", failed_days[6], failed_days[-1]),
        ]


def stored_rows(storage: SqliteEventLogStorage | PostgresEventLogStorage, run_id: str) -> dict[str, list[tuple]]:
    """The rows that storing events writes, in the run's SQLite file and in the index file.

    Rows are compared in the order they were written (by id), except in asset_keys, whose ids
    nothing orders by. The times the rows were written are left out.
    """
    tables = {"run": ["event_logs"],
              "index": ["event_logs", "asset_keys", "asset_event_tags", "asset_check_executions"]}
    rows = {}
    for shard, connection in (("run", storage.run_connection(run_id)), ("index", storage.index_connection())):
        with connection as conn:
            schema = db.MetaData()
            schema.reflect(conn, only=tables[shard])
            for name in tables[shard]:
                table = schema.tables[name]
                columns = [c for c in table.c if c.name not in {"id", "create_timestamp", "update_timestamp"}]
                order = columns if name == "asset_keys" else [table.c.id]
                rows[f"{shard}: {name}"] = [tuple(row) for row in conn.execute(db.select(*columns).order_by(*order))]
    return rows
