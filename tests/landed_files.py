"""Landing files that tests add, as an ingestion tool delivers them: new files, written aside
and renamed into place."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def land_new_orders(landing: Path, change=lambda rows: rows) -> int:
    """Land copies of the first landed orders file under new keys, through `change(rows)`, with
    the order date as text (as a CSV-fed ingestion tool would land it), as a new file; returns
    its row count."""
    landed_files = sorted((landing / "orders").glob("*.parquet"))
    landed = pq.read_table(landed_files[0])
    date = landed.schema.get_field_index("o_orderdate")
    landed = landed.set_column(date, "o_orderdate", landed.column(date).cast(pa.string()))
    offset = 100_000_000 * len(landed_files)  # keys no landed file has
    rows = change([{**row, "o_orderkey": row["o_orderkey"] + offset} for row in landed.to_pylist()])
    schema = pa.schema([field.with_nullable(True) for field in landed.schema])
    staged = landing / f".orders.new-{len(landed_files)}.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), staged)
    staged.rename(landing / "orders" / f"orders.new-{len(landed_files)}.parquet")
    return len(rows)
