"""`python -m jobs.entrypoint`: the process a runner starts for one table job.

The table and everything else about the job come in the Pipes session (jobs/contract.py). On
Databricks the same `main` runs from a small launcher script (see resources/job_package.py),
and Pipes may pass its bootstrap as arguments.
"""

from jobs.registry import discover
from jobs.runtime import run_table


def main() -> None:
    run_table(discover())


if __name__ == "__main__":
    main()
