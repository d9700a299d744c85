"""The PostgreSQL instance (PLATFORM_INSTANCE=postgres): the project's embedded PostgreSQL, started
by scripts/postgres.py, holds what a run records, and instances/postgres.yaml keeps dagster.yaml's
other settings.

The server tests need Debian's `postgresql` package: without it they skip, saying so, except
under CI (CI=true, as .ci/run sets), where they fail.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster_postgres import PostgresRunStorage, PostgresScheduleStorage

from platform_instance.event_log import BatchedPostgresEventLogStorage
from resources.paths import LOCAL_DIR, PROJECT_DIR
from scripts import postgres, team_dev
from scripts.setup_local import INSTANCE_FILES, link_instance_config

# A database of its own in the project's server, emptied at each session: the tests never see
# (or add to) the runs of the developer's `dagster` database.
TEST_DB = "dagster_test"
STORAGE_KEYS = {"storage", "run_storage", "event_log_storage", "schedule_storage"}


@pytest.fixture(scope="session")
def postgres_env(postgres_installed) -> dict[str, str]:
    """The PLATFORM_PG_* values of the project's server (started if it was not), pointing at an
    empty test database."""
    return postgres.empty_database(postgres.Dirs.from_env(), TEST_DB)


@pytest.fixture
def instance(postgres_env, tmp_path, monkeypatch) -> dg.DagsterInstance:
    """The instance a user gets with PLATFORM_INSTANCE=postgres: a Dagster home whose
    dagster.yaml is the project's PostgreSQL file, with the settings in the environment."""
    for name, value in postgres_env.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "home"
    link_instance_config(home, "postgres")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


@dg.asset(key=["pg_check", "numbers"])
def numbers() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


def test_a_run_is_recorded_in_postgres(instance, tmp_path):
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, BatchedPostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)

    result = dg.materialize([numbers], instance=instance)

    assert result.success
    assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS
    records = instance.fetch_materializations(numbers.key, limit=10).records
    assert [record.run_id for record in records] == [result.run_id]
    assert records[0].asset_materialization.metadata["rows"] == dg.IntMetadataValue(3)

    # Another Dagster home (a second webserver of the team) reads the same run from the database.
    other_home = tmp_path / "other_home"
    link_instance_config(other_home, "postgres")
    with dg.DagsterInstance.from_config(str(other_home)) as other:
        assert other.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS
        assert other.fetch_materializations(numbers.key, limit=10).records[0].run_id == result.run_id


def test_start_is_idempotent_and_stop_stops(postgres_installed):
    """On a server of its own (stopping the project's would cut off a running `make dev`)."""
    # Under .local, which the postgres user can reach; pytest's tmp_path is private to root.
    dirs = postgres.Dirs(Path(tempfile.mkdtemp(prefix="postgres-test-", dir=LOCAL_DIR)))
    try:
        first = postgres.start(dirs, {})
        pid = postgres.server_pid(dirs)
        assert postgres.is_running(dirs)
        assert first[postgres.PORT_ENV] == str(postgres.recorded_port(dirs))
        assert first[postgres.HOST_ENV] == postgres.LOCAL_HOST

        assert postgres.start(dirs, {}) == first
        assert postgres.server_pid(dirs) == pid  # the same server, not a restart

        assert postgres.stop(dirs) is True
        assert not postgres.is_running(dirs)
        assert postgres.stop(dirs) is False

        # Started again: the same port, from the state file.
        assert postgres.start(dirs, {})[postgres.PORT_ENV] == first[postgres.PORT_ENV]
    finally:
        postgres.stop(dirs)
        shutil.rmtree(dirs.root)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as the postgres user")
def test_an_unreachable_directory_is_named(postgres_installed, tmp_path):
    # pytest's base temporary directory is mode 0700: the postgres user cannot enter it.
    private = next(parent for parent in reversed(tmp_path.parents) if parent.stat().st_mode & 0o001 == 0)
    with pytest.raises(postgres.PostgresError, match=f"may not enter {private}"):
        postgres.start(postgres.Dirs(tmp_path / "postgres"), {})


def test_a_missing_server_names_the_package():
    with pytest.raises(postgres.PostgresError, match="Debian's `postgresql` package"):
        postgres.pick_bin_dir({}, None)
    with pytest.raises(postgres.PostgresError, match="made by PostgreSQL 15"):
        postgres.pick_bin_dir({"16": Path("/usr/lib/postgresql/16/bin")}, "15")


def test_connection_settings():
    embedded = postgres.connection_env({}, 5433)
    assert embedded == {"PLATFORM_PG_HOST": "127.0.0.1", "PLATFORM_PG_PORT": "5433", "PLATFORM_PG_DB": "dagster",
                        "PLATFORM_PG_USER": "dagster", "PLATFORM_PG_PASSWORD": postgres.DEV_PASSWORD}
    # What `env` printed is still the embedded server.
    assert postgres.is_embedded(embedded, 5433)

    managed = {"PLATFORM_PG_HOST": "db.example.com", "PLATFORM_PG_PASSWORD": "s3cret"}
    assert not postgres.is_embedded(managed, 5433)
    assert postgres.connection_env(managed, 5433)["PLATFORM_PG_PORT"] == "5432"
    with pytest.raises(postgres.PostgresError, match="PLATFORM_PG_PASSWORD is not set"):
        postgres.connection_env({"PLATFORM_PG_HOST": "db.example.com"}, 5433)


def test_the_instance_files_share_their_settings():
    """Dagster cannot include one instance file in another: both files repeat the run queue,
    concurrency and telemetry settings, and must agree on them."""
    sqlite, pg = (yaml.safe_load(INSTANCE_FILES[name].read_text()) for name in ("sqlite", "postgres"))
    shared = lambda config: {key: value for key, value in config.items() if key not in STORAGE_KEYS}  # noqa: E731
    assert shared(pg) == shared(sqlite)
    assert set(pg) & STORAGE_KEYS == {"run_storage", "event_log_storage", "schedule_storage"}


def test_setup_links_the_selected_file(tmp_path):
    home = tmp_path / "home"
    link_instance_config(home)
    assert (home / "dagster.yaml").resolve() == PROJECT_DIR / "dagster.yaml"
    link_instance_config(home, "postgres")
    assert (home / "dagster.yaml").resolve() == PROJECT_DIR / "instances" / "postgres.yaml"
    own = tmp_path / "own"
    own.mkdir()
    (own / "dagster.yaml").write_text("telemetry: {enabled: false}\n")
    link_instance_config(own, "postgres")
    assert not (own / "dagster.yaml").is_symlink()


def test_the_team_workspace_serves_the_project_location():
    """`make dev`'s team layout starts the code server the team workspace names, loading the
    module of workspace.yaml under the same location name."""
    server = team_dev.code_server(yaml.safe_load(team_dev.TEAM_WORKSPACE.read_text()),
                                  yaml.safe_load(team_dev.LOCAL_WORKSPACE.read_text()))
    assert server == team_dev.CodeServer(host="127.0.0.1", port=4266, location_name="delta_asset_platform",
                                         module_name="platform_assets.definitions")
    assert team_dev.commands(server, team_dev.TEAM_WORKSPACE)["code server"][-2:] == [
        "--location-name", "delta_asset_platform"]
