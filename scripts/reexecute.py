"""`python -m scripts.reexecute <run id>`: re-execute a failed run from its failure.

Only the steps that failed or did not run, and what depends on them, run again, in the same
instance ($DAGSTER_HOME), with the parent run's tags (its partition range included). The UI's
"Re-execute from failure" does the same for any run; this is the command-line way for runs of
`dagster asset materialize`, which Dagster 1.13's CLI cannot re-execute.
"""

import sys

import dagster as dg

from scripts.runs import code_location_job


def reexecute_from_failure(run_id: str, instance: dg.DagsterInstance) -> dg.JobExecutionResult:
    """Run again what the run `run_id` left undone, as a child run of the same job."""
    parent = instance.get_run_by_id(run_id)
    if parent is None:
        raise ValueError(f"no run {run_id} in the instance at {instance.root_directory}")
    options = dg.ReexecutionOptions.from_failure(run_id, instance)
    # The days a run of partitioned tables covered are tags; the child run needs them too.
    days = {k: v for k, v in parent.tags.items() if k.startswith("dagster/asset_partition_range")
            or k == "dagster/partition"}
    return dg.execute_job(code_location_job(parent.job_name), instance,
                          reexecution_options=options, tags=days)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.exit("usage: python -m scripts.reexecute <run id>")
    with dg.DagsterInstance.get() as instance:
        result = reexecute_from_failure(argv[1], instance)
        print(f"run {result.run_id}: {'success' if result.success else 'failure'}")
        return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
