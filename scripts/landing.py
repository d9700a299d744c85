"""TPC-H landing data, as an ingestion tool would deliver it.

Parquet file sets under `<landing>/<dataset>/`, and the nations as a Delta table that the tool
keeps, `<landing>/ingest/nation` (an external table: the platform only reads it).

Orders and line items arrive day by day: the history lands up to HISTORY_CUTOFF (or an earlier day), the later
days wait whole in `<landing>/.tpch/`, a hidden folder that no reader of
`<landing>/<dataset>/*.parquet` sees, and `python -m scripts.landing next-day` lands the next.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake

from jobs.table import external_table_path
from resources.paths import landing_dir as configured_landing_dir

DATASETS = ("orders", "lineitem", "customer")
DAILY_DATASETS = ("orders", "lineitem")  # arrive day by day; customers land whole
NATION_TABLE = "ingest.nation"
# TPC-H order dates end 1998-08-02: 31 days are left to land after the history.
HISTORY_CUTOFF = date(1998, 7, 2)
TPCH_DIR = ".tpch"  # the whole generated orders and line items, `<dataset>.parquet`
HISTORY_UNTIL_FILE = "history-until"  # in TPCH_DIR: the last day of the landed history
DAY_FILE = re.compile(r"orders\.(\d{4}-\d{2}-\d{2})\.parquet")


class NoMoreDays(LookupError):
    """TPC-H has no order day after the last landed one."""


def generate_landing(landing_dir: str | Path, scale_factor: float, history_until: date = HISTORY_CUTOFF) -> Path:
    """Land the orders up to `history_until` and their line items (`<dataset>.history.parquet`),
    every customer (`customer.1.parquet`) and the nation Delta table; keep the whole orders and
    line items in `<landing>/.tpch/` for the days to come.

    Deterministic for a scale factor. Everything is generated aside and each folder moved in
    whole, as an ingestion tool that writes then renames would deliver it.
    """
    landing = Path(landing_dir)
    landing.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=landing, prefix=".generating-") as staging:
        staging = Path(staging)
        _tpchgen(scale_factor, staging)
        nations = pq.read_table(staging / "nation")
        _stage_history(staging, history_until)
        # The source first, so that a landed history always has its later days to land.
        for name in (TPCH_DIR, *DATASETS):
            shutil.rmtree(landing / name, ignore_errors=True)
            (staging / name).rename(landing / name)
    write_nations(landing, nations)
    return landing


def _tpchgen(scale_factor: float, output_dir: Path) -> None:
    """Generate the TPC-H tables the landing area holds, one file per table."""
    tpchgen = Path(sys.executable).with_name("tpchgen-cli")
    if not tpchgen.exists():
        raise FileNotFoundError(f"tpchgen-cli not found next to {sys.executable}: run `make setup`")
    subprocess.run(
        [str(tpchgen), "parquet",
         "--scale-factor", str(scale_factor), "--tables", ",".join((*DATASETS, "nation")),
         "--parts", "1", "--output-dir", str(output_dir), "--overwrite"],
        check=True,
    )


def _stage_history(staging: Path, history_until: date) -> None:
    """Move the whole orders and line items to `.tpch/`, and write in their place the history."""
    source = staging / TPCH_DIR
    source.mkdir()
    for dataset in DAILY_DATASETS:
        generated = staging / dataset / f"{dataset}.1.parquet"
        pq.write_table(_plain_strings(pq.read_table(generated)), source / f"{dataset}.parquet")
        generated.unlink()
    (source / HISTORY_UNTIL_FILE).write_text(history_until.isoformat())
    orders, lineitem = orders_between(source, None, history_until)
    pq.write_table(orders, staging / "orders" / "orders.history.parquet")
    pq.write_table(lineitem, staging / "lineitem" / "lineitem.history.parquet")


def _plain_strings(table: pa.Table) -> pa.Table:
    """`table` with its string_view columns (as tpchgen-cli writes them) as plain strings,
    which pyarrow can filter."""
    fields = [f.with_type(pa.string()) if f.type == pa.string_view() else f for f in table.schema]
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


def orders_between(source: Path, after: date | None, until: date) -> tuple[pa.Table, pa.Table]:
    """The orders in `source` dated after `after` (if given) up to `until`, and their line items."""
    dated = [("o_orderdate", "<=", until)] + ([("o_orderdate", ">", after)] if after else [])
    orders = pq.read_table(source / "orders.parquet", filters=dated)
    lineitem = pq.read_table(source / "lineitem.parquet")
    return orders, lineitem.filter(pc.is_in(lineitem["l_orderkey"], value_set=orders["o_orderkey"]))


def land_next_day(landing_dir: str | Path) -> date:
    """Land the day after the last landed one: its orders and their line items as new files,
    `orders/orders.<day>.parquet` and `lineitem/lineitem.<day>.parquet`; returns the day.

    Every calendar day lands, one without orders as empty files (with the schema), so the landed
    days stay contiguous and each call moves one day on. Raises NoMoreDays after TPC-H's last
    order day.
    """
    landing = Path(landing_dir)
    source = _tpch_source(landing)
    last = last_landed_day(landing)
    day = last + timedelta(days=1)
    if day > (end := _last_order_day(source)):
        raise NoMoreDays(f"nothing left to land: the last landed day is {last} and TPC-H's orders end {end}")
    orders, lineitem = orders_between(source, last, day)
    # Line items first: a reader that sees a day's orders sees their line items too.
    _land_file(landing, "lineitem", day, lineitem)
    _land_file(landing, "orders", day, orders)
    return day


def last_landed_day(landing_dir: str | Path) -> date:
    """The newest `orders/orders.<day>.parquet`, or the history's last day when only the history
    landed."""
    names = (path.name for path in Path(landing_dir, "orders").glob("orders.*.parquet"))
    days = [date.fromisoformat(match[1]) for match in map(DAY_FILE.fullmatch, names) if match]
    if days:
        return max(days)
    history_until = Path(landing_dir, TPCH_DIR, HISTORY_UNTIL_FILE)
    # A landing area generated before the history's end was recorded ends at HISTORY_CUTOFF.
    return date.fromisoformat(history_until.read_text()) if history_until.exists() else HISTORY_CUTOFF


def day_file(landing_dir: str | Path, dataset: str, day: date) -> Path:
    """Where `dataset`'s rows of `day` land."""
    return Path(landing_dir, dataset, f"{dataset}.{day.isoformat()}.parquet")


def _tpch_source(landing: Path) -> Path:
    source = landing / TPCH_DIR
    if not (source / "orders.parquet").exists() or not (source / "lineitem.parquet").exists():
        raise FileNotFoundError(
            f"no TPC-H orders and line items to land in {source}: generate the landing area again "
            "(remove it and run `make demo`)"
        )
    return source


def _last_order_day(source: Path) -> date:
    return pc.max(pq.read_table(source / "orders.parquet", columns=["o_orderdate"])["o_orderdate"]).as_py()


def _land_file(landing: Path, dataset: str, day: date, rows: pa.Table) -> None:
    """Write `rows` aside in `.tpch/`, then rename the file into `<dataset>/` in one step, so a
    reader sees the whole file or none."""
    target = day_file(landing, dataset, day)
    if target.exists():
        return  # only an interrupted landing of this same day leaves one, with the same rows
    # Named by the process so that two landings never share one; mkstemp's would be private (0600).
    aside = landing / TPCH_DIR / f".{target.name}.{os.getpid()}"
    try:
        pq.write_table(rows, aside)
        os.replace(aside, target)
    finally:
        aside.unlink(missing_ok=True)


def write_nations(landing_dir: str | Path, nations: pa.Table) -> int:
    """Commit `nations` as the new version of the nation table; returns the Delta version."""
    path = external_table_path(str(landing_dir), NATION_TABLE)
    write_deltalake(path, nations, mode="overwrite")
    return DeltaTable(path).version()


def rename_nation(landing_dir: str | Path, old: str, new: str) -> int:
    """An upstream correction: one nation renamed, committed as a new version of the table."""
    path = external_table_path(str(landing_dir), NATION_TABLE)
    nations = DeltaTable(path).to_pyarrow_table()
    names = pc.if_else(pc.equal(nations["n_name"], old), new, nations["n_name"])
    return write_nations(landing_dir, nations.set_column(nations.schema.get_field_index("n_name"), "n_name", names))


def has_landing(landing_dir: str | Path) -> bool:
    """Whether every dataset has its parquet files, the days still to land are kept in
    `.tpch/` (a landing area from before day-by-day landing has none), and the nation table
    exists."""
    landing = Path(landing_dir)
    return (all(any((landing / name).glob("*.parquet")) for name in DATASETS)
            and all((landing / TPCH_DIR / f"{name}.parquet").exists() for name in DAILY_DATASETS)
            and DeltaTable.is_deltatable(external_table_path(str(landing), NATION_TABLE)))


def main(argv: list[str] | None = None) -> int:
    """`python -m scripts.landing next-day`, in the landing area PLATFORM_LANDING_DIR names."""
    parser = argparse.ArgumentParser(prog="python -m scripts.landing", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("next-day", help="land the day after the last landed one and print it")
    parser.parse_args(argv)
    landing = Path(configured_landing_dir())
    # Generating is left to `make demo`, which knows the scale factor to use.
    if not has_landing(landing):
        print(f"no landing data in {landing}: run `make demo` first", file=sys.stderr)
        return 1
    try:
        day = land_next_day(landing)
    except (NoMoreDays, FileNotFoundError) as error:
        print(error, file=sys.stderr)
        return 1
    orders, lineitem = (pq.ParquetFile(day_file(landing, d, day)).metadata.num_rows for d in DAILY_DATASETS)
    print(f"landed {day}: {orders} orders, {lineitem} line items")
    return 0


if __name__ == "__main__":
    sys.exit(main())
