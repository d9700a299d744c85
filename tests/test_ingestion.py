"""Bronze tables ingest each landing file once, and say which days of silver their new rows touch."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from deltalake import DeltaTable

from jobs.contract import DayRange
from jobs.landing_files import ChangedLandingFile, LandingFile, new_files
from jobs.registry import discover
from jobs.contract import day_ranges
from jobs.runtime import build_table
from jobs.warehouse import Warehouse

DECLARATIONS = discover()
SILVER = "silver.order_lines"


def test_new_files_are_those_not_ingested_and_a_changed_one_is_refused_by_name():
    ingested = {LandingFile("orders/a.parquet", 10, 1), LandingFile("orders/gone.parquet", 5, 1)}
    listed = [LandingFile("orders/a.parquet", 10, 1), LandingFile("orders/b.parquet", 7, 2)]

    assert new_files(listed, ingested, "main.bronze.orders") == [LandingFile("orders/b.parquet", 7, 2)]

    rewritten = [LandingFile("orders/a.parquet", 11, 3)]
    with pytest.raises(ChangedLandingFile, match=r"main.bronze.orders: .*orders/a.parquet \(ingested at 10 bytes"):
        new_files(rewritten, ingested, "main.bronze.orders")


def test_touched_dates_become_the_fewest_ranges_of_consecutive_days():
    dates = {dt.date(1998, 7, 3), dt.date(1998, 7, 4), dt.date(1993, 1, 1)}

    assert day_ranges(dates) == [DayRange("1993-01-01", "1993-01-02"), DayRange("1998-07-03", "1998-07-05")]


class Ingestion:
    """A landing area and warehouse of the test's own, built with the job's build_table."""

    def __init__(self, spark, root: Path, landing: str):
        self.spark, self.landing = spark, root / "landing"
        shutil.copytree(landing, self.landing)
        self.warehouse = Warehouse("main", str(self.landing), str(root / "warehouse"),
                                   frozenset(DECLARATIONS.external))

    def build(self, table: str, write_id: str):
        return build_table(self.spark, self.warehouse, DECLARATIONS.tables[table], {}, write_id, DECLARATIONS)

    def rows(self, table: str) -> list[dict]:
        return DeltaTable(self.warehouse.location(table)).to_pyarrow_table().to_pylist()

    def land_copies(self, dataset: str, name: str, where: str, key_column: str) -> Path:
        """Land, as a new file, copies of the landed rows matching `where`, under new keys."""
        staged = self.landing / f".{name}"
        duckdb.sql(f"COPY (SELECT * REPLACE ({key_column} + 100000000 AS {key_column}) "
                   f"FROM '{self.landing}/{dataset}/*.parquet' WHERE {where}) TO '{staged}' (FORMAT parquet)")
        landed = self.landing / dataset / name
        os.replace(staged, landed)  # whole, as an ingestion tool delivers it
        return landed

    def version(self, table: str) -> int:
        return DeltaTable(self.warehouse.location(table)).version()


@pytest.fixture
def ingestion(spark, tmp_path, landing) -> Ingestion:
    ingestion = Ingestion(spark, tmp_path, landing)
    for table in ("bronze.orders", "bronze.lineitem", "bronze.customers"):
        ingestion.build(table, "first")
    return ingestion


def test_a_first_ingestion_touches_every_day(spark, tmp_path, landing):
    first = Ingestion(spark, tmp_path, landing).build("bronze.orders", "first")

    assert first.touched_days == {SILVER: None}  # None: every day


def test_a_new_file_is_appended_once_across_a_retry_and_a_later_run(ingestion):
    before = len(ingestion.rows("bronze.orders"))
    late = ingestion.land_copies("orders", "orders.late.parquet", "o_orderkey <= 3", "o_orderkey")

    first = ingestion.build("bronze.orders", "second")
    retried = ingestion.build("bronze.orders", "second")  # the job's retry, after its commit
    later = ingestion.build("bronze.orders", "third")

    assert first.commit.version == retried.commit.version == later.commit.version == 1
    rows = ingestion.rows("bronze.orders")
    assert len(rows) == before + 3
    per_file = Counter(row["_source_file"] for row in rows)
    assert set(per_file) == {f"orders/{path.name}" for path in (ingestion.landing / "orders").glob("*.parquet")}
    assert per_file[f"orders/{late.name}"] == 3


def test_nothing_new_makes_no_commit_and_touches_no_day(ingestion):
    build = ingestion.build("bronze.orders", "again")

    assert build.commit.version == ingestion.version("bronze.orders") == 0
    assert build.touched_days == {}


def test_a_changed_file_is_refused_with_its_name_and_the_table_keeps_its_version(ingestion):
    landed = next((ingestion.landing / "orders").glob("*.parquet"))
    os.utime(landed, (0, 0))

    with pytest.raises(ChangedLandingFile, match=f"orders/{landed.name}"):
        ingestion.build("bronze.orders", "after-change")
    assert ingestion.version("bronze.orders") == 0


def test_late_rows_touch_the_days_of_their_orders_only(ingestion):
    first_two_years = duckdb.sql(
        f"SELECT min(o_orderkey) FROM '{ingestion.landing}/orders/*.parquet' GROUP BY year(o_orderdate) "
        "ORDER BY 1 LIMIT 2").fetchall()
    keys = ", ".join(str(key) for (key,) in first_two_years)
    ingestion.land_copies("orders", "orders.late.parquet", f"o_orderkey IN ({keys})", "o_orderkey")
    ingestion.land_copies("lineitem", "lineitem.late.parquet", f"l_orderkey IN ({keys})", "l_orderkey")
    late_days = {row[0] for row in duckdb.sql(
        f"SELECT o_orderdate FROM '{ingestion.landing}/orders/orders.late.parquet'").fetchall()}

    orders_build = ingestion.build("bronze.orders", "late")
    lineitem_build = ingestion.build("bronze.lineitem", "late")

    expected = day_ranges(late_days)
    assert orders_build.touched_days == {SILVER: expected}
    # Line items map to their orders' days through bronze.orders, which has the late orders now.
    assert lineitem_build.touched_days == {SILVER: expected}
