"""The write figures of `make bench TARGETS=writes`: one process, one session on the warm Spark
server.

Checks: every table built in dependency order, as its job does (checks, contracts, bad-row
handling); per table, the build's seconds and the part spent evaluating its checks.
Partitions: silver and gold rebuilt for one day, then for every day, each timed, after one
untimed warm-up of each.
"""

from __future__ import annotations

import time
from pathlib import Path

from jobs.contract import SparkTarget
from jobs.registry import build_order, discover
from jobs.runtime import build_table, spark_session
from jobs.warehouse import Days, Warehouse
from resources.spark_server import LocalSparkServer

ONE_DAY = ("1995-03-15", "1995-03-16")


def bench_writes(work: Path, landing: Path) -> None:
    server = LocalSparkServer.from_env()
    spark = spark_session(SparkTarget(remote=server.ensure_running()))
    declarations = discover()
    tables = declarations.tables
    warehouse = Warehouse(catalog="main", landing_root=str(landing), root=str(work / "warehouse_writes"),
                          external=frozenset(declarations.external))
    print(f"  checks, every table built once (one session on the Spark server, {server.threads} threads):")
    print(f"    {'table':<32} {'build s':>8} {'checks s':>9} {'share':>6}  checks")
    for name in build_order(tables):
        started = time.monotonic()
        build = build_table(spark, warehouse, tables[name], {}, write_id="checks", declarations=declarations)
        seconds = time.monotonic() - started
        print(f"    main.{name:<27} {seconds:8.1f} {build.check_seconds:9.1f} "
              f"{build.check_seconds / seconds:6.0%}  {len(build.checks)}")

    print(f"  one day ({ONE_DAY[0]}) against every day, rebuilt (after one warm-up each):")
    for name in ("silver.order_lines", "gold.daily_nation_revenue"):
        table = tables[name]
        day = Days(table.partitions.column, *ONE_DAY)
        every = Days(table.partitions.column, table.partitions.start, table.partitions.end)
        times = {}
        for label, days in (("one day", day), ("every day", every)):
            build_table(spark, warehouse, table, {}, write_id=f"warm {label}", declarations=declarations, days=days)
            started = time.monotonic()
            build = build_table(spark, warehouse, table, {}, write_id=f"timed {label}",
                                declarations=declarations, days=days)
            times[label] = (time.monotonic() - started, build.row_count, build.commit.bytes_written)
        (one, one_rows, one_bytes), (full, full_rows, full_bytes) = times["one day"], times["every day"]
        print(f"    main.{name:<27} one day {one:5.1f} s ({one_rows} rows, {one_bytes:,} bytes written), "
              f"every day {full:5.1f} s ({full_rows} rows, {full_bytes:,} bytes): {full / one:.1f}x")
