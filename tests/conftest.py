"""Shared fixtures: one local Spark session per test process, small TPC-H landing data."""

import pytest
from pyspark.sql import SparkSession

from resources.local_spark import local_spark_conf
from scripts.landing import generate_landing

SCALE_FACTOR = 0.001


@pytest.fixture(scope="session")
def spark() -> SparkSession:
    session = SparkSession.builder.config(map=local_spark_conf(threads=2)).getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def landing(tmp_path_factory) -> str:
    """TPC-H parquet landing files at a tiny scale factor."""
    return str(generate_landing(tmp_path_factory.mktemp("landing"), SCALE_FACTOR))
