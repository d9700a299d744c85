"""`make bench TARGETS=heap`: the warm Spark server's heap as it reads more and more tables.

A server that runs all day reads every table of the platform. Each table read is written twice
and read back through the server; every 50 tables the JVM collects its garbage and the live old
generation is printed, with the seconds spent in full collections so far. Delta's log cache is
bounded (`BOUNDED_HEAP_CONF` in resources/local_spark.py), so the live heap levels off instead
of growing with the tables read.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from jobs.contract import SparkTarget
from jobs.runtime import spark_session
from resources.spark_server import LocalSparkServer

TABLES = 300
REPORT_EVERY = 50


def old_generation(jvm_pid: int) -> tuple[float, float]:
    """(MB used by the old generation, seconds of full collections since the JVM started)."""
    header, values = subprocess.run(["jstat", "-gc", str(jvm_pid)], capture_output=True, text=True,
                                    check=True).stdout.split("\n")[:2]
    row = dict(zip(header.split(), values.split()))
    return float(row["OU"]) / 1024, float(row["FGCT"])


def bench_server_heap(work: Path, tables: int = TABLES) -> None:
    server = LocalSparkServer.from_env()
    with server.lease() as url:
        jvm_pid = server.status().jvm_pid
        spark = spark_session(SparkTarget(remote=url))
        print(f"heap: {tables} tables written twice and read back through the Spark server ({server.memory} heap)")
        started = time.monotonic()
        for number in range(1, tables + 1):
            location = str(work / "heap" / f"table_{number}")
            for commit in range(2):
                rows = spark.range(commit * 10, commit * 10 + 10).withColumnRenamed("id", "key")
                rows.write.format("delta").mode("append").save(location)
            spark.read.format("delta").load(location).count()
            if number % REPORT_EVERY == 0:
                subprocess.run(["jcmd", str(jvm_pid), "GC.run"], capture_output=True, check=True)
                used, full_gc = old_generation(jvm_pid)
                print(f"  {number:4d} tables read: live old generation {used:6.1f} MB, "
                      f"full collections {full_gc:5.1f} s so far, {time.monotonic() - started:6.1f} s")
        spark.stop()
