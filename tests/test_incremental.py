"""Incremental builds, end to end as a user runs them: `scripts.landing next-day`, then
`make update` (scripts.update) rebuilds only the days the new files touch; a full refresh of a
copy then finds every table identical."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from deltalake import DeltaTable

from resources.paths import PROJECT_DIR
from scripts.runs import RANGE_END, RANGE_START
from scripts.setup_local import link_instance_config

TABLES = ["bronze.orders", "bronze.lineitem", "bronze.customers", "silver.order_lines", "gold.daily_nation_revenue"]
DAILY = ["silver.order_lines", "gold.daily_nation_revenue"]


@dataclass
class Platform:
    root: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DAGSTER_HOME": str(self.root / "home"), "PLATFORM_WAREHOUSE_DIR": str(self.root / "warehouse"),
                "PLATFORM_LANDING_DIR": str(self.root / "landing")}

    def command(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", *args], cwd=PROJECT_DIR, env=self.env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    def update(self, *args: str) -> tuple[str, list[dg.DagsterRun]]:
        """`make update`; its output and the runs it started."""
        before = {run.run_id for run in self.runs()}
        output = self.command("scripts.update", *args)
        return output, [run for run in self.runs() if run.run_id not in before]

    def land_next_day(self) -> str:
        return re.search(r"landed (\d{4}-\d\d-\d\d)", self.command("scripts.landing", "next-day")).group(1)

    def runs(self) -> list[dg.DagsterRun]:
        with dg.DagsterInstance.from_config(str(self.root / "home")) as instance:
            return list(reversed(instance.get_runs()))

    def rows(self, table: str) -> list[tuple]:
        rows = DeltaTable(str(self.root / "warehouse" / "main" / Path(*table.split(".")))).to_pyarrow_table().to_pylist()
        return sorted(tuple(row.values()) for row in rows)

    def files(self, table: str) -> set[str]:
        """The data files of the table's latest version."""
        return set(DeltaTable(str(self.root / "warehouse" / "main" / Path(*table.split(".")))).file_uris())

    def gold_day(self, day: str) -> list[tuple]:
        return [row for row in self.rows("gold.daily_nation_revenue") if row[0].isoformat() == day]


def daily_ranges(runs: list[dg.DagsterRun]) -> list[tuple[str, str]]:
    return [(run.tags[RANGE_START], run.tags[RANGE_END]) for run in runs if RANGE_START in run.tags]


@pytest.fixture(scope="module")
def platform(tmp_path_factory, landing) -> Platform:
    root = tmp_path_factory.mktemp("incremental")
    shutil.copytree(landing, root / "landing")
    link_instance_config(root / "home")
    platform = Platform(root)
    _, runs = platform.update()  # the first build: every table, every day
    assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * 2
    return platform


def test_the_next_day_rebuilds_only_that_day_and_leaves_the_others_as_they_were(platform):
    gold_before = platform.rows("gold.daily_nation_revenue")
    files_before = {table: platform.files(table) for table in DAILY}

    day = platform.land_next_day()
    _, runs = platform.update()

    assert daily_ranges(runs) == [(day, day)]
    for table, files in files_before.items():  # the day's rows went to new files; none rewritten
        assert files < platform.files(table), f"{table} rewrote files of other days"
    assert set(runs[0].asset_selection) == {dg.AssetKey(["main", "bronze", "orders"]), dg.AssetKey(["main", "bronze", "lineitem"])}
    gold_after = platform.rows("gold.daily_nation_revenue")
    assert [row for row in gold_after if row[0].isoformat() != day] == gold_before
    assert sum(row[3] for row in platform.gold_day(day)) == orders_of(platform.root / "landing", day) > 0


def test_an_update_with_nothing_new_builds_nothing(platform):
    output, runs = platform.update()

    assert "nothing changed since the last build" in output and runs == []


def test_a_late_order_rebuilds_its_old_day(platform):
    landing = platform.root / "landing"
    [(key, day)] = duckdb.sql(f"SELECT o_orderkey, o_orderdate::VARCHAR FROM '{landing}/orders/*.parquet' "
                              "ORDER BY o_orderkey LIMIT 1").fetchall()
    for dataset, column in (("orders", "o_orderkey"), ("lineitem", "l_orderkey")):
        staged = landing / f".late-{dataset}.parquet"
        duckdb.sql(f"COPY (SELECT * REPLACE ({column} + 900000000 AS {column}) FROM '{landing}/{dataset}/*.parquet' "
                   f"WHERE {column} = {key}) TO '{staged}' (FORMAT parquet)")
        staged.rename(landing / dataset / f"{dataset}.late.parquet")

    _, runs = platform.update()

    assert daily_ranges(runs) == [(day, day)]
    assert sum(row[3] for row in platform.gold_day(day)) == orders_of(landing, day)


def test_incremental_builds_equal_a_full_refresh(platform, tmp_path):
    for _ in range(2):
        platform.land_next_day()
        platform.update()
    copy = Platform(tmp_path / "copy")
    for part in ("landing", "warehouse", "home"):
        shutil.copytree(platform.root / part, copy.root / part, symlinks=True)

    copy.update("--full-refresh")

    for table in TABLES:
        assert copy.rows(table) == platform.rows(table), table


def orders_of(landing: Path, day: str) -> int:
    """The day's landed orders that have line items, counted with DuckDB."""
    return duckdb.sql(f"""
        SELECT count(DISTINCT o_orderkey) FROM '{landing}/orders/*.parquet'
        JOIN '{landing}/lineitem/*.parquet' ON l_orderkey = o_orderkey
        WHERE o_orderdate = DATE '{day}'""").fetchall()[0][0]
