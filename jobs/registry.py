"""Finds the declarations (one `TABLE` per module under jobs.tables) and validates them."""

from __future__ import annotations

import dataclasses
import graphlib
import importlib
import inspect
import pkgutil
import re
from dataclasses import dataclass

from jobs.checks import SchemaContract
from jobs.table import RECORD_SUFFIX, ExternalTable, IngestNewFiles, Merge, Overwrite, Quarantine, Table

TABLES_PACKAGE = "jobs.tables"
_NAME = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")


class DeclarationError(ValueError):
    """A table declaration is invalid; the message names the module and the table."""


@dataclass(frozen=True)
class Declarations:
    """The tables the platform builds, and the external tables they may read."""

    tables: dict[str, Table]
    external: dict[str, ExternalTable]

    def contracts(self) -> dict[str, SchemaContract]:
        """Table name -> declared schema contract, for the tables that declare one."""
        declared = [*self.tables.values(), *self.external.values()]
        return {t.name: t.contract for t in declared if t.contract is not None}


def discover(package: str = TABLES_PACKAGE) -> Declarations:
    """Import every module under `package` and return its validated declarations by name."""
    found: dict[str, Table | ExternalTable] = {}
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{root.__name__}."):
        module = importlib.import_module(info.name)
        if info.ispkg:
            continue
        declared = getattr(module, "TABLE", None)
        if not isinstance(declared, Table | ExternalTable):
            raise DeclarationError(
                f"{info.name}: declares no table (expected TABLE = Table(...) or ExternalTable(...))"
            )
        declared = dataclasses.replace(declared, module=info.name)
        if declared.name in found:
            raise DeclarationError(
                f"table {declared.name} is declared twice: in {found[declared.name].module} "
                f"and in {declared.module}"
            )
        found[declared.name] = declared
    declarations = Declarations(
        tables={name: t for name, t in found.items() if isinstance(t, Table)},
        external={name: t for name, t in found.items() if isinstance(t, ExternalTable)},
    )
    validate(declarations)
    return declarations


def build_order(tables: dict[str, Table]) -> list[str]:
    """Table names, each after every table it reads; raises graphlib.CycleError on a cycle."""
    declared = tables.keys()
    graph = {name: set(table.table_inputs.values()) & declared for name, table in tables.items()}
    return list(graphlib.TopologicalSorter(graph).static_order())


def dependents(tables: dict[str, Table], name: str) -> list[str]:
    """The tables that read `name`, directly or through others, in build order."""
    found: set[str] = set()
    for candidate in build_order(tables):
        reads = set(tables[candidate].table_inputs.values())
        if name in reads or reads & found:
            found.add(candidate)
    return [t for t in build_order(tables) if t in found]


def lineage_groups(tables: dict[str, Table]) -> list[list[str]]:
    """The tables in groups that read one another, directly or not (the lineage's connected
    parts), each in build order, ordered by their first table in build order."""
    parent = {name: name for name in tables}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for name, table in tables.items():
        for upstream in set(table.table_inputs.values()) & set(tables):
            parent[root(upstream)] = root(name)
    groups: dict[str, list[str]] = {}
    for name in build_order(tables):
        groups.setdefault(root(name), []).append(name)
    return list(groups.values())


def validate(declarations: Declarations) -> None:
    """Raise DeclarationError for bad names, unknown inputs, mismatched transforms or a cycle."""
    tables = declarations.tables
    for declared in [*tables.values(), *declarations.external.values()]:
        if not _NAME.match(declared.name):
            raise DeclarationError(
                f"{declared.module}: table {declared.name}: name must be 'schema.table' in lower case"
            )
        if declared.name.endswith(RECORD_SUFFIX):
            raise DeclarationError(f"{declared.module}: table {declared.name}: names ending in {RECORD_SUFFIX} "
                                   "are the platform's records of ingested files")
    for table in tables.values():
        where = f"{table.module}: table {table.name}"
        for param, source in table.table_inputs.items():
            if source not in tables and source not in declarations.external:
                raise DeclarationError(f"{where} reads unknown table {source} (input '{param}')")
        params = list(inspect.signature(table.transform).parameters)
        if sorted(params) != sorted(table.inputs):
            raise DeclarationError(
                f"{where}: transform takes {params} but the inputs are {list(table.inputs)}"
            )
        if isinstance(table.write, Merge) and not table.write.keys:
            raise DeclarationError(f"{where}: Merge needs at least one key column")
        if table.partitions is not None and not isinstance(table.write, Overwrite):
            raise DeclarationError(f"{where}: a partitioned table is written with Overwrite (of its days)")
        if isinstance(table.write, IngestNewFiles) and not table.landing_datasets:
            raise DeclarationError(f"{where}: IngestNewFiles needs a LandingFiles input")
        for param in table.days_touched:
            if table.partitions is None:
                raise DeclarationError(f"{where}: days_touched is for a table with daily partitions")
            if not isinstance(table.inputs.get(param), str):
                raise DeclarationError(f"{where}: days_touched names '{param}', which is not an input table")
            upstream = tables.get(table.inputs[param])
            column = table.days_touched[param]
            if isinstance(column, str) and upstream is not None and upstream.contract is not None \
                    and upstream.contract.columns.get(column) != "date":
                raise DeclarationError(f"{where}: days_touched reads '{column}' of {upstream.name}, which has no "
                                       f"such date column ({dict(upstream.contract.columns)})")
        day = table.clustered_by_day
        if day is not None and table.contract is not None and table.contract.columns.get(day) != "date":
            raise DeclarationError(f"{where}: clustered_by_day '{day}' is not a date column of its contract")
        check_names = [check.name for check in table.checks]
        if len(set(check_names)) != len(check_names):
            raise DeclarationError(f"{where}: two checks have the same name ({check_names})")
        if isinstance(table.bad_rows, Quarantine):
            target = table.bad_rows.table
            if not _NAME.match(target) or target in tables or target in declarations.external:
                raise DeclarationError(
                    f"{where}: quarantine table {target} must be a new 'schema.table' name"
                )
    try:
        build_order(tables)
    except graphlib.CycleError as error:
        cycle = error.args[1]
        modules = ", ".join(sorted({tables[name].module for name in cycle}))
        raise DeclarationError(
            f"tables form a cycle: {' -> '.join(cycle)} (declared in {modules})"
        ) from None
