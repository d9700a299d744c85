"""`python -m scripts.reexecute <run id>`: re-execute a failed run from its failure.

Only the steps that failed or did not run, and what depends on them, run again, in the same
instance ($DAGSTER_HOME), with the parent run's tags (its partition range included). The UI's
"Re-execute from failure" does the same for any run; this is the command-line way for runs of
`dagster asset materialize`, which Dagster 1.13's CLI cannot re-execute.
"""

import sys

import dagster as dg


def asset_job() -> dg.JobDefinition:
    """The job `dagster asset materialize` runs: every asset of the code location."""
    from platform_assets.definitions import defs

    return defs.resolve_implicit_global_asset_job_def()


def reexecute_from_failure(run_id: str, instance: dg.DagsterInstance) -> dg.JobExecutionResult:
    options = dg.ReexecutionOptions.from_failure(run_id, instance)
    return dg.execute_job(dg.reconstructable(asset_job), instance, reexecution_options=options)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.exit("usage: python -m scripts.reexecute <run id>")
    with dg.DagsterInstance.get() as instance:
        result = reexecute_from_failure(argv[1], instance)
        print(f"run {result.run_id}: {'success' if result.success else 'failure'}")
        return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
