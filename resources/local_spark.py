"""Local Spark with Delta: the session settings shared by local jobs, tests and benchmarks.

Delta's jars are resolved once from Maven Central through Spark's own Ivy
(`configure_spark_with_delta_pip`) into `.local/ivy/<versions>/jars`; sessions then load
those jar files directly, so everything after setup runs offline.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from resources.paths import LOCAL_DIR

DELTA_EXTENSIONS = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def ivy_dir() -> Path:
    """Spark's Ivy home for this pyspark / delta-spark pair (a version bump gets a fresh one)."""
    return LOCAL_DIR / "ivy" / f"pyspark-{version('pyspark')}-delta-{version('delta_spark')}"


def delta_jars() -> list[str]:
    """The resolved jar files; raises if setup has not resolved them yet."""
    jars = sorted(str(p) for p in (ivy_dir() / "jars").glob("*.jar"))
    if not jars:
        raise FileNotFoundError(
            f"Delta jars not found under {ivy_dir()}: run `make setup` (needs Maven Central once)"
        )
    return jars


def resolve_delta_jars() -> list[str]:
    """Download Delta's jars with their dependencies, unless already there."""
    if not list((ivy_dir() / "jars").glob("*.jar")):
        from delta import configure_spark_with_delta_pip
        from pyspark.sql import SparkSession

        builder = SparkSession.builder.master("local[1]").config("spark.jars.ivy", str(ivy_dir()))
        configure_spark_with_delta_pip(builder).getOrCreate().stop()
    return delta_jars()


def local_spark_conf(
    threads: int = 1, driver_memory: str = "1g", shuffle_partitions: int = 4
) -> dict[str, str]:
    """Settings for a local session with Delta, bounded to `threads` cores."""
    return {
        "spark.master": f"local[{threads}]",
        "spark.jars": ",".join(delta_jars()),
        **DELTA_EXTENSIONS,
        "spark.driver.memory": driver_memory,
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.databricks.delta.snapshotPartitions": str(shuffle_partitions),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
    }
