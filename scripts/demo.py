"""`make demo`: TPC-H landing data, every table materialized over every day through Dagster, a
summary."""

import os
import shutil
import sys
import time
from pathlib import Path

import dagster as dg

from resources.paths import LOCAL_DIR, landing_dir, warehouse_dir
from resources.spark_server import LocalSparkServer
from scripts.landing import generate_landing, has_landing
from scripts.progress import execute_with_progress, observe_sources
from scripts.runs import format_table_runs, full_history, table_runs


def main() -> int:
    landing = landing_dir()
    scale_factor = float(os.environ.get("PLATFORM_SCALE_FACTOR", "0.01"))
    if not has_landing(landing):
        print(f"generating TPC-H landing data, scale factor {scale_factor}, into {landing}")
        generate_landing(landing, scale_factor)
        # Tables ingested from earlier landing files would take the new files for more rows.
        if Path(warehouse_dir()).exists():
            print(f"removing {warehouse_dir()}: its tables were built from other landing data")
            shutil.rmtree(warehouse_dir())

    spark = LocalSparkServer.from_env()
    started = time.monotonic()
    print(f"Spark server: {spark.ensure_running()} (ready in {time.monotonic() - started:.1f} s; "
          "`make spark-stop` stops it)")

    log = LOCAL_DIR / "demo.log"
    log.write_text("")
    with dg.DagsterInstance.get() as instance:
        observe_sources(instance)
        runs, started = [], time.monotonic()
        # The unpartitioned tables, then the daily ones over every day (see full_history).
        for selection, partitions in full_history():
            run = execute_with_progress(instance, selection, partitions, log)
            if run is None:
                print(f"no run was started; Dagster's output is in {log}", file=sys.stderr)
                return 1
            runs.append(run)
            if run.status != dg.DagsterRunStatus.SUCCESS:
                print(log.read_text()[-5000:], file=sys.stderr)
                return 1
        print(f"\nevery table built in {time.monotonic() - started:.1f} s "
              f"(Dagster home {instance.root_directory}, Dagster's output in {log})\n")
        print(format_table_runs([row for run in runs for row in table_runs(instance, run.run_id)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
