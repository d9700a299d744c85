"""`python -m jobs.entrypoint`: the process a runner starts for one table job.

The table and everything else about the job come in the Pipes session (jobs/contract.py). On
Databricks the same `main` runs from a small launcher script (see resources/job_package.py),
and Pipes may pass its bootstrap as arguments.
"""

import time

STARTED = time.monotonic()  # before the imports below: a job reports how long its session took from here

from jobs.registry import discover  # noqa: E402
from jobs.runtime import run_table  # noqa: E402


def main() -> None:
    run_table(discover(), started=STARTED)


if __name__ == "__main__":
    main()
