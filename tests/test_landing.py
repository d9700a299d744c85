"""Landing data that arrives day by day: the TPC-H history, then one day at a time. No Spark."""

import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from resources.paths import PROJECT_DIR
from scripts.landing import (
    HISTORY_CUTOFF, NoMoreDays, generate_landing, has_landing, land_next_day, last_landed_day,
)

SCALE_FACTOR = 0.01
LAST_ORDER_DAY = date(1998, 8, 2)  # TPC-H's last order date


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """A landing area as `make demo` generates it; tests that land days work on a copy."""
    return generate_landing(tmp_path_factory.mktemp("landing"), SCALE_FACTOR)


@pytest.fixture
def landing(generated, tmp_path) -> Path:
    return Path(shutil.copytree(generated, tmp_path / "landing"))


def test_the_history_holds_the_orders_up_to_the_cut_off_and_exactly_their_line_items(generated):
    assert _files(generated, "orders") == ["orders.history.parquet"]
    assert _files(generated, "lineitem") == ["lineitem.history.parquet"]
    assert has_landing(generated)
    history = _sql(generated, "select count(*), max(o_orderdate) from landed_orders")
    all_orders = _sql(generated, "select count(*) from tpch_orders where o_orderdate <= $1", HISTORY_CUTOFF)
    assert history == [(all_orders[0][0], HISTORY_CUTOFF)]
    # The landed line items are those of the landed orders, none missing, none other.
    assert _sql(generated, """
        select count(*) from tpch_lineitem join landed_orders on l_orderkey = o_orderkey
        """) == _sql(generated, "select count(*) from landed_lineitem")
    assert _sql(generated, """
        select count(*) from landed_lineitem anti join landed_orders on l_orderkey = o_orderkey
        """) == [(0,)]
    # 31 days are left to land.
    assert _sql(generated, "select max(o_orderdate) from tpch_orders") == [(LAST_ORDER_DAY,)]


def test_next_day_from_the_command_line_adds_two_new_files_and_touches_no_other(landing):
    before = _snapshot(landing)

    result = _next_day(landing)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("landed 1998-07-03: ")
    after = _snapshot(landing)
    assert sorted(set(after) - set(before)) == ["lineitem/lineitem.1998-07-03.parquet",
                                                "orders/orders.1998-07-03.parquet"]
    assert {path: after[path] for path in before} == before
    orders, lineitem = _sql(landing, """
        select (select count(*) from 'orders/orders.1998-07-03.parquet'),
               (select count(*) from 'lineitem/lineitem.1998-07-03.parquet')
        """)[0]
    assert result.stdout == f"landed 1998-07-03: {orders} orders, {lineitem} line items\n"
    assert orders > 0 and lineitem > 0
    assert _files(landing, ".tpch") == ["history-until", "lineitem.parquet", "orders.parquet"]  # nothing left aside


def test_each_day_lands_once_and_every_day_together_is_the_whole_of_tpch(landing):
    days = _land_every_day(landing)

    assert days == [HISTORY_CUTOFF + timedelta(days=n) for n in range(1, 32)]
    assert days[-1] == LAST_ORDER_DAY == last_landed_day(landing)
    for landed, whole, key in (("landed_orders", "tpch_orders", "o_orderkey"),
                               ("landed_lineitem", "tpch_lineitem", "l_orderkey, l_linenumber")):
        counts = f"select count(*), count(distinct ({key})) from"
        assert _sql(landing, f"{counts} {landed}") == _sql(landing, f"{counts} {whole}")
        missing = f"from {whole} select {key} except from {landed} select {key}"
        assert _sql(landing, f"select count(*) from ({missing})") == [(0,)]
    # Each day's file holds that day's orders only, with the schema the history has.
    assert _sql(landing, """
        select count(*) from read_parquet('orders/orders.1998-*-*.parquet', filename = true)
        where filename not like '%' || strftime(o_orderdate, '%Y-%m-%d') || '.parquet'
        """) == [(0,)]
    for dataset in ("orders", "lineitem"):
        history = pq.read_schema(landing / dataset / f"{dataset}.history.parquet")
        assert all(pq.read_schema(path) == history for path in (landing / dataset).glob("*.parquet"))


def test_a_shorter_history_lands_its_next_days_from_its_own_end(tmp_path):
    short = generate_landing(tmp_path / "landing", SCALE_FACTOR, history_until=date(1993, 6, 30))

    assert last_landed_day(short) == date(1993, 6, 30)
    assert land_next_day(short) == date(1993, 7, 1)
    [(latest,)] = _sql(short, "select max(o_orderdate) from 'orders/orders.history.parquet'")
    assert latest <= date(1993, 6, 30)


def test_after_the_last_day_next_day_fails_naming_it(landing):
    _land_every_day(landing)
    files = _snapshot(landing)

    result = _next_day(landing)

    assert result.returncode == 1
    assert result.stderr == ("nothing left to land: the last landed day is 1998-08-02 "
                             "and TPC-H's orders end 1998-08-02\n")
    assert _snapshot(landing) == files


def test_a_day_without_orders_lands_as_empty_files_with_the_schema(landing):
    # The ingestion tool's 3 July had no orders.
    tpch_orders = landing / ".tpch" / "orders.parquet"
    orders = pq.read_table(tpch_orders)
    pq.write_table(orders.filter(pc.not_equal(orders["o_orderdate"], date(1998, 7, 3))), tpch_orders)

    assert land_next_day(landing) == date(1998, 7, 3)
    assert land_next_day(landing) == date(1998, 7, 4)

    for dataset in ("orders", "lineitem"):
        empty = pq.ParquetFile(landing / dataset / f"{dataset}.1998-07-03.parquet")
        assert empty.metadata.num_rows == 0
        assert empty.schema_arrow == pq.read_schema(landing / dataset / f"{dataset}.history.parquet")


def test_next_day_without_a_landing_area_says_to_run_make_demo(tmp_path):
    result = _next_day(tmp_path / "landing")

    assert result.returncode == 1
    assert result.stderr == f"no landing data in {tmp_path / 'landing'}: run `make demo` first\n"


def test_generating_again_gives_the_same_files(generated, tmp_path):
    again = generate_landing(tmp_path / "landing", SCALE_FACTOR)

    for folder in ("orders", "lineitem", "customer", ".tpch"):
        assert _files(again, folder) == _files(generated, folder)
        for name in _files(generated, folder):
            assert (again / folder / name).read_bytes() == (generated / folder / name).read_bytes()


def _next_day(landing: Path) -> subprocess.CompletedProcess:
    """`python -m scripts.landing next-day` with PLATFORM_LANDING_DIR set to `landing`."""
    return subprocess.run([sys.executable, "-m", "scripts.landing", "next-day"], cwd=PROJECT_DIR,
                          env={**os.environ, "PLATFORM_LANDING_DIR": str(landing)},
                          capture_output=True, text=True)


def _land_every_day(landing: Path) -> list[date]:
    days = []
    while True:
        try:
            days.append(land_next_day(landing))
        except NoMoreDays:
            return days


def _files(landing: Path, folder: str) -> list[str]:
    return sorted(path.name for path in (landing / folder).iterdir())


def _snapshot(landing: Path) -> dict[str, tuple]:
    """Every file under the landing area: its size, modification time and bytes."""
    return {str(path.relative_to(landing)): (path.stat().st_size, path.stat().st_mtime_ns, path.read_bytes())
            for path in landing.rglob("*") if path.is_file()}


def _sql(landing: Path, query: str, *parameters) -> list[tuple]:
    """`query` over the landed files (`landed_<dataset>`) and the whole TPC-H data (`tpch_<dataset>`)."""
    connection = duckdb.connect()
    connection.execute(f"set file_search_path = '{landing}'")
    for dataset in ("orders", "lineitem"):
        connection.execute(f"create view landed_{dataset} as from '{landing}/{dataset}/*.parquet'")
        connection.execute(f"create view tpch_{dataset} as from '{landing}/.tpch/{dataset}.parquet'")
    return connection.execute(query, list(parameters)).fetchall()
