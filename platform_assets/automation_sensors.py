"""The automation sensors: each table with a trigger is evaluated by exactly one of them, and
none evaluates more tables than Dagster allows a sensor that runs in the code location.

Tables that read each other, or the same input, are kept in one sensor as far as its size
allows, because Dagster starts tables together (in one run, upstream first) only when one
sensor requests them in the same evaluation. So the tables are cut into connected groups (a
table and what it reads), taken upstream first, and packed into sensors of at most
`tables_per_sensor`; a group larger than that is cut into equal parts along the build order.
A new table joins a sensor by itself: no sensor is declared by hand.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import dagster as dg

from jobs.table import Table
from platform_assets.gates import InputEvents
from platform_assets.sources import landing_key
from platform_assets.table_assets import table_key

# Dagster refuses to evaluate more assets and checks than this in one sensor that runs in the
# code location (MAX_ENTITIES in automation_condition_sensor_definition.py, 1.13).
DAGSTER_MAX_PER_SENSOR = 500
FIRST_SENSOR = "table_automation"


@dataclass(frozen=True)
class SensorGroup:
    """One automation sensor: its name, the tables it evaluates, in build order, and what
    answers their gates (their inputs' new versions, one query per tick)."""

    name: str
    tables: tuple[str, ...]
    events: InputEvents


def sensor_groups(tables: dict[str, Table], catalog: str, tables_per_sensor: int) -> list[SensorGroup]:
    """The tables cut into sensors of at most `tables_per_sensor`, connected tables together."""
    if not 1 <= tables_per_sensor <= DAGSTER_MAX_PER_SENSOR:
        raise ValueError(
            f"PLATFORM_AUTOMATION_TABLES_PER_SENSOR is {tables_per_sensor}: it must be between 1 and "
            f"{DAGSTER_MAX_PER_SENSOR}, the most Dagster evaluates in one sensor in the code location")
    chunks: list[list[str]] = []
    for component in _connected(tables):
        parts = math.ceil(len(component) / tables_per_sensor)
        for part in range(parts):
            piece = component[part * len(component) // parts:(part + 1) * len(component) // parts]
            if chunks and len(chunks[-1]) + len(piece) <= tables_per_sensor:
                chunks[-1].extend(piece)
            else:
                chunks.append(list(piece))
    return [
        SensorGroup(FIRST_SENSOR if n == 0 else f"{FIRST_SENSOR}_{n + 1}", tuple(chunk),
                    _input_events(tables, chunk, catalog))
        for n, chunk in enumerate(chunks)
    ]


def _connected(tables: dict[str, Table]) -> list[list[str]]:
    """The tables in groups connected by what they read (another table, a landing dataset, an
    external table), each in build order, the groups ordered by their first table."""
    depth = _depths(tables)
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for name, table in tables.items():
        inputs = [*table.table_inputs.values(), *(f"landing:{d}" for d in table.landing_datasets)]
        for source in inputs:
            parent[root(source)] = root(name)
    groups: dict[str, list[str]] = {}
    for name in sorted(tables, key=lambda n: (depth[n], n)):
        groups.setdefault(root(name), []).append(name)
    return list(groups.values())


def _depths(tables: dict[str, Table]) -> dict[str, int]:
    """How many tables lie upstream of each table on its longest path (0: reads only sources)."""
    depth: dict[str, int] = {}

    def of(name: str) -> int:
        if name not in depth:
            upstream = [u for u in tables[name].table_inputs.values() if u in tables]
            depth[name] = 1 + max(map(of, upstream)) if upstream else 0
        return depth[name]

    for name in tables:
        of(name)
    return depth


def _input_events(tables: dict[str, Table], names: list[str], catalog: str) -> InputEvents:
    read = {source for name in names for source in tables[name].table_inputs.values()}
    return InputEvents(
        materialized=[table_key(catalog, name) for name in {*names, *(read & set(tables))}],
        observed=[*(table_key(catalog, name) for name in read - set(tables)),
                  *(landing_key(d) for name in names for d in tables[name].landing_datasets)],
    )


def automation_sensor(group: SensorGroup, catalog: str, interval: int) -> dg.AutomationConditionSensorDefinition:
    """The sensor of `group`. It runs in the code location (use_user_code_server): the tables'
    conditions run our code (the gates, the days touched)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # use_user_code_server
        return dg.AutomationConditionSensorDefinition(
            group.name, target=dg.AssetSelection.assets(*(table_key(catalog, n) for n in group.tables)),
            default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=interval,
            use_user_code_server=True,
            description=f"Starts {len(group.tables)} tables when their inputs land "
                        f"({group.tables[0]} ... {group.tables[-1]}).",
        )
