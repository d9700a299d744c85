"""`python -m tests.orders_build_process <warehouse> <landing> <signals dir> <write id> <pause>`:
builds bronze.orders with the job's own build_table, in a process of its own, for tests that
kill a build mid-write or race two builds.

Every row's o_comment becomes `attempt-<write id>`, so a test can tell whose rows a table
holds. The build waits for `<signals>/go` before starting; while the write runs, its first
task touches `<signals>/writing-<pid>` and sleeps `pause` seconds, so the write is in flight.
It exits 0 on success, 75 on a write conflict (the message on stderr), 1 otherwise.
"""

import dataclasses
import os
import sys
import time
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.registry import discover
from jobs.runtime import RETRYABLE_EXIT_CODE, WriteConflict, build_table
from jobs.warehouse import Warehouse
from resources.local_spark import local_spark_conf


def main(warehouse_dir: str, landing_dir: str, signals: str, write_id: str, pause: str) -> int:
    declarations = discover()
    declared = declarations.tables["bronze.orders"]
    tag, marker, seconds = f"attempt-{write_id}", f"{signals}/writing-{os.getpid()}", float(pause)

    def in_flight(comment):
        if not os.path.exists(marker):
            Path(marker).touch()
            time.sleep(seconds)
        return tag

    spark = SparkSession.builder.config(map=local_spark_conf(threads=1)).getOrCreate()
    mark = F.udf(in_flight, "string")

    def transform(orders: DataFrame) -> DataFrame:
        return declared.transform(orders).withColumn("o_comment", mark(F.col("o_comment")))

    slow = dataclasses.replace(declared, transform=transform)
    warehouse = Warehouse("main", landing_dir, warehouse_dir, frozenset(declarations.external))
    Path(signals, f"ready-{os.getpid()}").touch()
    while not Path(signals, "go").exists():
        time.sleep(0.1)
    try:
        build_table(spark, warehouse, slow, {}, write_id=write_id)
    except WriteConflict as conflict:
        print(conflict, file=sys.stderr, flush=True)
        return RETRYABLE_EXIT_CODE
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
