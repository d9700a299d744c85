"""Shared fixtures: one local Spark session per test process, small TPC-H landing data."""

import pytest
from pyspark.sql import SparkSession

from resources.local_spark import local_spark_conf
from scripts.landing import generate_landing

SCALE_FACTOR = 0.001


@pytest.fixture(scope="session")
def spark(tmp_path_factory) -> SparkSession:
    # Catalog tables (the Unity Catalog mode, played by Spark's own session catalog) go here.
    metastore_dir = str(tmp_path_factory.mktemp("spark_metastore"))
    conf = {**local_spark_conf(threads=2), "spark.sql.warehouse.dir": metastore_dir}
    session = SparkSession.builder.config(map=conf).getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def landing(tmp_path_factory) -> str:
    """TPC-H parquet landing files at a tiny scale factor."""
    return str(generate_landing(tmp_path_factory.mktemp("landing"), SCALE_FACTOR))
