"""`python -m jobs.entrypoint`: the process a runner starts for one table job.

The table and everything else about the job come in the Pipes session (jobs/contract.py). On
Databricks the same `main` runs from a small launcher script (see resources/job_package.py),
and Pipes may pass its bootstrap as arguments.

Locally the runner starts it with `--wait-for-job [SPARK_URL]`, possibly before its job: it
imports Spark's client, opens its session on the server at SPARK_URL if given, then reads the
job's Pipes bootstrap from stdin, one JSON object of environment variables. At the end of
stdin (the run ended without another job) it exits.
"""

import time

STARTED = time.monotonic()  # before the imports below: a job reports how long its session took from here

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from jobs.contract import WAIT_FOR_JOB_FLAG, SparkTarget  # noqa: E402
from jobs.registry import discover  # noqa: E402
from jobs.runtime import run_table, spark_session  # noqa: E402


def main() -> None:
    run_table(discover(), started=STARTED)


def main_waiting_for_job(spark_url: str | None) -> None:
    """Get ready for a job, then run the one whose bootstrap arrives on stdin."""
    declarations = discover()
    if spark_url:
        # The job's own session, opened now: run_table's getOrCreate returns it.
        spark_session(SparkTarget(remote=spark_url)).version
    line = sys.stdin.readline()
    if not line.strip():
        return
    os.environ.update(json.loads(line))
    run_table(declarations, started=time.monotonic())


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == WAIT_FOR_JOB_FLAG:
        main_waiting_for_job(sys.argv[2] if len(sys.argv) > 2 else None)
    else:
        main()
