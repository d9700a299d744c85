"""Shared fixtures: a session on the machine's warm Spark server, small TPC-H landing data."""

import pytest
from pyspark.sql import SparkSession

from jobs.contract import SparkTarget
from jobs.runtime import spark_session
from resources.spark_server import LocalSparkServer
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
