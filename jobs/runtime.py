"""Runs one table's job: read the pinned inputs, transform, write one Delta commit, report it.

`build_table` is the Spark work alone; `run_table` wraps it in a Dagster Pipes session, which
gives it its parameters (extras) and carries the materialization back to the orchestrator.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

from dagster_pipes import PipesContext
from pyspark.sql import SparkSession

from jobs.pipes_io import on_databricks, open_pipes
from jobs.table import LandingFiles, Table
from jobs.warehouse import Commit, Warehouse


@dataclass(frozen=True)
class TableBuild:
    """What one build read and wrote."""

    commit: Commit
    row_count: int
    input_versions: dict[str, int]  # full table name -> Delta version read
    landing_paths: dict[str, str]  # dataset -> directory read
    columns: list[tuple[str, str]]  # (name, Spark SQL type)


def build_table(
    spark: SparkSession, warehouse: Warehouse, table: Table, pinned_versions: dict[str, int]
) -> TableBuild:
    """Read each input (tables at their pinned Delta version), transform, write one commit.

    An input table without a pinned version is read at its latest version, and the version
    read is reported either way. Any error is annotated with the table's name.
    """
    try:
        return _build(spark, warehouse, table, pinned_versions)
    except Exception as error:
        error.add_note(f"while building table {warehouse.full_name(table.name)} ({table.module})")
        raise


def _build(
    spark: SparkSession, warehouse: Warehouse, table: Table, pinned_versions: dict[str, int]
) -> TableBuild:
    frames, versions, landing = {}, {}, {}
    for param, source in table.inputs.items():
        if isinstance(source, LandingFiles):
            frames[param] = warehouse.read_landing(spark, source.dataset)
            landing[source.dataset] = warehouse.landing_path(source.dataset)
        else:
            version = pinned_versions.get(source)
            if version is None:
                version = warehouse.latest_version(spark, source)
            frames[param] = warehouse.read_table(spark, source, version)
            versions[warehouse.full_name(source)] = version
    result = table.transform(**frames)
    commit = warehouse.write(spark, table.name, result, table.write)
    written = warehouse.read_table(spark, table.name, commit.version)
    return TableBuild(
        commit=commit,
        row_count=written.count(),
        input_versions=versions,
        landing_paths=landing,
        columns=[(f.name, f.dataType.simpleString()) for f in written.schema.fields],
    )


def run_table(table: Table, external: frozenset[str]) -> None:
    """Build `table` inside the Dagster Pipes session the orchestrator opened for this process.

    `external` names the tables other systems write, which live apart from the platform's."""
    with open_pipes() as pipes:
        extras = pipes.extras
        started = time.monotonic()
        spark = SparkSession.builder.config(map=extras.get("spark_conf", {})).getOrCreate()
        if not on_databricks():  # no SparkContext on serverless or shared (Spark Connect) compute
            spark.sparkContext.setLogLevel("WARN")
        session_ready = time.monotonic()
        warehouse = Warehouse(
            catalog=extras["catalog"],
            landing_root=extras["landing_dir"],
            root=extras.get("warehouse_dir"),
            external=external,
        )
        # Printed, not logged through Pipes: the job's stdout reaches the step's logs locally
        # and, through include_stdio_in_messages, from Databricks. (dagster-pipes can drop what
        # is printed in the last second before the session closes.)
        pinned = extras.get("input_versions", {})
        print(f"{warehouse.full_name(table.name)}: building, inputs pinned at {pinned}", flush=True)
        build = build_table(spark, warehouse, table, pinned)
        print(f"{warehouse.full_name(table.name)}: wrote Delta version {build.commit.version}, "
              f"{build.row_count} rows", flush=True)
        _report(pipes, warehouse, table, build,
                startup=session_ready - started, work=time.monotonic() - session_ready)


def _report(
    pipes: PipesContext, warehouse: Warehouse, table: Table, build: TableBuild,
    startup: float, work: float,
) -> None:
    metadata = {
        "delta_version": build.commit.version,
        "dagster/row_count": build.row_count,
        "operation": build.commit.operation,
        "files_written": build.commit.files_written,
        "bytes_written": build.commit.bytes_written,
        "input_versions": {"raw_value": build.input_versions, "type": "json"},
        "dagster/column_schema": {
            "raw_value": {"columns": [{"name": n, "type": t} for n, t in build.columns]},
            "type": "table_schema",
        },
        "location": {
            "raw_value": warehouse.location(table.name),
            "type": "text" if warehouse.root is None else "path",
        },
        "spark_startup_seconds": round(startup, 3),
        "spark_seconds": round(work, 3),
        "ran_on": f"{pipes.extras['ran_on']} {os.getpid()} on {socket.gethostname()}",
    }
    if build.landing_paths:
        metadata["landing_paths"] = {"raw_value": build.landing_paths, "type": "json"}
    pipes.report_asset_materialization(
        metadata=metadata, data_version=str(build.commit.version)
    )
