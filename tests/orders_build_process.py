"""`python -m tests.orders_build_process <spark url> <warehouse> <landing> <signals dir> <write id> <pause>`:
builds bronze.orders with the job's own build_table on a session of its own on the Spark server,
in a process of its own, for tests that kill a build mid-write or race two builds.

Every row's o_comment becomes `attempt-<write id>`, so a test can tell whose rows a table
holds. The build waits for `<signals>/go` before starting; while the write runs, its first
task (in a Python worker of the Spark server) touches `<signals>/writing-<worker pid>` and
sleeps `pause` seconds, so the write is in flight. It exits 0 on success, 75 on a write conflict
(the message on stderr), 1 otherwise.
"""

import dataclasses
import os
import sys
import time
from pathlib import Path

from jobs.contract import RETRYABLE_EXIT_CODE, SparkTarget
from jobs.registry import discover
from jobs.runtime import WriteConflict, build_table, spark_session, stop_on_termination
from jobs.spark import DataFrame, F
from jobs.warehouse import Warehouse


def main(spark_url: str, warehouse_dir: str, landing_dir: str, signals: str, write_id: str, pause: str) -> int:
    stop_on_termination()  # as the job does
    declarations = discover()
    declared = declarations.tables["bronze.orders"]
    tag, seconds = f"attempt-{write_id}", float(pause)

    def in_flight(comment):
        if not any(Path(signals).glob(f"writing-{write_id}-*")):
            Path(signals, f"writing-{write_id}-{os.getpid()}").touch()
            time.sleep(seconds)
        return tag

    spark = spark_session(SparkTarget(remote=spark_url))
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
