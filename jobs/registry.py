"""Finds the table declarations (one `TABLE` per module under jobs.tables) and validates them."""

from __future__ import annotations

import dataclasses
import graphlib
import importlib
import inspect
import pkgutil
import re

from jobs.table import Merge, Table

TABLES_PACKAGE = "jobs.tables"
_NAME = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")


class DeclarationError(ValueError):
    """A table declaration is invalid; the message names the module and the table."""


def discover_tables(package: str = TABLES_PACKAGE) -> dict[str, Table]:
    """Import every module under `package` and return its validated tables by name."""
    tables: dict[str, Table] = {}
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{root.__name__}."):
        module = importlib.import_module(info.name)
        if info.ispkg:
            continue
        table = getattr(module, "TABLE", None)
        if not isinstance(table, Table):
            raise DeclarationError(f"{info.name}: declares no table (expected TABLE = Table(...))")
        table = dataclasses.replace(table, module=info.name)
        if table.name in tables:
            raise DeclarationError(
                f"table {table.name} is declared twice: in {tables[table.name].module} "
                f"and in {table.module}"
            )
        tables[table.name] = table
    validate_tables(tables)
    return tables


def build_order(tables: dict[str, Table]) -> list[str]:
    """Table names, each after every table it reads; raises graphlib.CycleError on a cycle."""
    graph = {name: set(table.table_inputs.values()) for name, table in tables.items()}
    return list(graphlib.TopologicalSorter(graph).static_order())


def validate_tables(tables: dict[str, Table]) -> None:
    """Raise DeclarationError for bad names, unknown inputs, mismatched transforms or a cycle."""
    for table in tables.values():
        where = f"{table.module}: table {table.name}"
        if not _NAME.match(table.name):
            raise DeclarationError(f"{where}: name must be 'schema.table' in lower case")
        for param, source in table.table_inputs.items():
            if source not in tables:
                raise DeclarationError(f"{where} reads unknown table {source} (input '{param}')")
        params = list(inspect.signature(table.transform).parameters)
        if sorted(params) != sorted(table.inputs):
            raise DeclarationError(
                f"{where}: transform takes {params} but the inputs are {list(table.inputs)}"
            )
        if isinstance(table.write, Merge) and not table.write.keys:
            raise DeclarationError(f"{where}: Merge needs at least one key column")
    try:
        build_order(tables)
    except graphlib.CycleError as error:
        cycle = error.args[1]
        modules = ", ".join(sorted({tables[name].module for name in cycle}))
        raise DeclarationError(
            f"tables form a cycle: {' -> '.join(cycle)} (declared in {modules})"
        ) from None
