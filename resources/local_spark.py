"""Local Spark with Delta: the settings shared by local jobs, tests, benchmarks and the warm
Spark Connect server (`resources.spark_server`).

Delta's jars are resolved once from Maven Central through Spark's own Ivy
(`configure_spark_with_delta_pip`) into `.local/ivy/<versions>/jars`; sessions then load
those jar files directly, so everything after setup runs offline.

This module imports neither pyspark nor delta at import time (only `resolve_delta_jars` does,
once, at setup): the orchestrator reads these settings without loading Spark.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from resources.paths import LOCAL_DIR

DELTA_EXTENSIONS = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

# A long-lived server otherwise keeps every table it has read on its heap: Delta caches each
# table's log and snapshot state, with its query plans, for up to 10,000 tables and 60 minutes.
# With those defaults on the 768 MB heap, `make bench TARGETS=heap` measured about 2.4 MB per
# table read, the heap full at 200 tables, then out of heap; through the test suite, 615 s of
# full collections in 25 minutes and simple tests 6x slower. A table evicted from the cache
# rebuilds its snapshot from the log's last checkpoint when next read.
# Spark's status store is bounded too: by default it keeps 1,000 queries and 100,000 tasks.
BOUNDED_HEAP_CONF = {
    "spark.databricks.delta.delta.log.cacheSize": "32",
    "spark.databricks.delta.delta.log.cacheRetentionMinutes": "10",
    "spark.sql.ui.retainedExecutions": "50",
    "spark.ui.retainedJobs": "100",
    "spark.ui.retainedStages": "100",
    "spark.ui.retainedTasks": "2000",
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


def shared_spark_conf(shuffle_partitions: int, threads: int) -> dict[str, str]:
    """The settings every local Spark has, a job's own JVM or the warm server: Delta's session
    extensions, UTC timestamps, no UI or console progress bar, the driver on 127.0.0.1 only,
    `shuffle_partitions` for Spark's shuffles (its 200 default costs more in task overhead than
    it saves at this size), one partition per thread for Delta's snapshot state and VACUUM's
    file listing, and Python UDFs that do not hang on file input."""
    return {
        **DELTA_EXTENSIONS,
        # With Spark 4.2's default (true), an Arrow-optimized Python UDF whose input comes from
        # a file scan (Parquet, Delta) hangs forever, the JVM and the Python worker each
        # waiting for the other (pyspark 4.2.0, pyarrow 26; classic and Connect
        # alike). UDFs over other input, and these with it off, work.
        "spark.sql.execution.arrow.pythonUDF.columnarInput.enabled": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        # Each new table version's first reader builds its snapshot state from the Delta log.
        # A log of a few dozen files fits one wave of tasks: measured once at scale factor 1,
        # 0.28 s with one task per thread against 0.37 s with 4 tasks on 2 threads.
        "spark.databricks.delta.snapshotPartitions": str(threads),
        # VACUUM lists and deletes files in this many tasks: at Spark's default, 10,000 tasks,
        # a VACUUM of even a one-file table took 20-40 s on 2 threads (1-1.5 s with one per thread).
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(threads),
        **BOUNDED_HEAP_CONF,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
    }


def local_spark_conf(
    threads: int = 1, driver_memory: str = "1g", shuffle_partitions: int = 4
) -> dict[str, str]:
    """Settings for a local session with Delta in a JVM of its own, bounded to `threads` cores."""
    return {
        "spark.master": f"local[{threads}]",
        "spark.jars": ",".join(delta_jars()),
        "spark.driver.memory": driver_memory,
        **shared_spark_conf(shuffle_partitions, threads),
    }
