"""Shared fixtures: a session on the machine's warm Spark server, small TPC-H landing data, and
empty databases on the project's PostgreSQL."""

import os
import uuid
from collections.abc import Callable

import pytest
from pyspark.sql import SparkSession

from jobs.contract import SparkTarget
from jobs.runtime import spark_session
from resources.spark_server import LocalSparkServer
from scripts import postgres
from scripts.landing import generate_landing

SCALE_FACTOR = 0.001


@pytest.fixture(scope="session")
def spark_server() -> LocalSparkServer:
    """The warm Spark Connect server every local job connects to, as configured for this machine."""
    return LocalSparkServer.from_env()


@pytest.fixture(scope="session")
def spark(spark_server) -> SparkSession:
    """A session of the tests' own on the warm server: what a table job gets."""
    with spark_server.lease() as url:
        yield spark_session(SparkTarget(remote=url))


@pytest.fixture(scope="session")
def landing(tmp_path_factory) -> str:
    """TPC-H parquet landing files at a tiny scale factor."""
    return str(generate_landing(tmp_path_factory.mktemp("landing"), SCALE_FACTOR))


@pytest.fixture(scope="session")
def postgres_installed() -> None:
    """Debian's PostgreSQL server is installed; else the test skips, saying so, except under CI
    (CI=true, as .ci/run sets), where it fails."""
    try:
        postgres.pick_bin_dir(postgres.installed_versions(), None)
    except postgres.PostgresError as error:
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"CI is set and {error}")
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def postgres_database(postgres_installed) -> Callable[[str], dict[str, str]]:
    """`new(prefix)`: a new empty database on the project's PostgreSQL (started if need be), as
    the PLATFORM_PG_* settings that instances/postgres.yaml reads."""
    dirs, created = postgres.Dirs.from_env(), []

    def new(prefix: str) -> dict[str, str]:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        created.append(name)
        return postgres.empty_database(dirs, name)

    yield new
    for name in created:
        postgres.drop_database(dirs, name)
