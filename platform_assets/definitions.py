"""The code location: `dagster dev` and `dagster asset materialize` load `defs` from here.

Every setting is an environment variable, all optional; docs/settings.md lists them.
"""

import gc
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from jobs.registry import TABLES_PACKAGE, Declarations, discover
from platform_assets.automation_sensors import automation_sensor, sensor_groups
from platform_assets.leftover_sensors import leftover_sensors
from platform_assets.source_sensor import source_sensor
from platform_assets.sources import Source, landing_key, source_asset
from platform_assets.table_assets import SPARK_POOL, table_assets, table_key
from resources.landing_area import LandingArea
from resources.runner import TableRunner
from resources.targets import runner_from_env


def setting(name: str, default: str) -> str:
    return dg.EnvVar(name).get_value(default) or default


def automation_interval_seconds() -> int:
    """How often the daemon observes sources and evaluates triggers (a queued run then starts
    within a second: dagster.yaml's run_queue)."""
    return int(setting("PLATFORM_AUTOMATION_INTERVAL_SECONDS", "4"))


def sources(declarations: Declarations, catalog: str) -> list[Source]:
    """Every landing dataset a table reads, and every external table."""
    datasets = sorted({d for table in declarations.tables.values() for d in table.landing_datasets})
    return [Source(key=landing_key(dataset), dataset=dataset) for dataset in datasets] + [
        Source(key=table_key(catalog, name), table=table)
        for name, table in sorted(declarations.external.items())
    ]


def step_executor(runner: TableRunner) -> dg.ExecutorDefinition:
    """How a run executes its steps: one at a time in the run's own process when
    PLATFORM_MAX_PARALLEL_JOBS (default: what the runner says) is 1, else that many at once, each
    in a step process."""
    raw = setting("PLATFORM_MAX_PARALLEL_JOBS", str(runner.jobs_at_once()))
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"PLATFORM_MAX_PARALLEL_JOBS must be a whole number of at least 1, not {raw!r}")
    if int(raw) == 1:
        # No step process to fork per table, and nothing contends with the job's own work.
        return dg.in_process_executor
    return dg.multiprocess_executor.configured({
        # Dagster's default caps parallel steps at the core count, but a step mostly waits on
        # its job process, whose work runs elsewhere: the runner knows how many fit there.
        "max_concurrent": int(raw),
        # Step processes fork from one that has already imported Dagster and this module,
        # rather than each importing them again (Dagster's default, spawn).
        "start_method": {"forkserver": {"preload_modules": [__name__]}},
    })


def tables_per_sensor() -> int:
    """The most tables one automation sensor evaluates (Dagster allows 500)."""
    raw = setting("PLATFORM_AUTOMATION_TABLES_PER_SENSOR", "400")
    if not raw.isdigit():
        raise ValueError(f"PLATFORM_AUTOMATION_TABLES_PER_SENSOR must be a whole number, not {raw!r}")
    return int(raw)


def build_definitions(tables_package: str = TABLES_PACKAGE) -> dg.Definitions:
    """Definitions for the tables declared under `tables_package`, configured from the environment."""
    declarations = discover(tables_package)
    tables = declarations.tables
    runner = runner_from_env()
    catalog = dg.EnvVar("PLATFORM_CATALOG").get_value() or runner.default_catalog()
    runner.check_tables(set(tables))
    observed = sources(declarations, catalog)
    interval = automation_interval_seconds()
    groups = sensor_groups(tables, catalog, tables_per_sensor())
    events = {name: group.events for group in groups for name in group.tables}
    return dg.Definitions(
        assets=[*table_assets(tables, catalog, events, pool=None if runner.runs_elsewhere() else SPARK_POOL),
                *(source_asset(source) for source in observed)],
        sensors=[
            source_sensor(observed, interval),
            *(automation_sensor(group, catalog, interval) for group in groups),
            *(leftover_sensors() if runner.runs_elsewhere() else []),
        ],
        resources={"runner": runner, "landing": LandingArea.from_env()},
        executor=step_executor(runner),
    )


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's garbage collector paused while the definitions are built, and what they made
    frozen out of its later passes. Loading makes some thousand objects a table, all kept for the
    life of the process: the collector would walk them again and again while they are made
    (a fifth of the load at a thousand tables), and on every automation tick after."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


with collector_paused():
    defs = build_definitions()
