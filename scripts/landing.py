"""TPC-H landing data, as an ingestion tool would deliver it.

Parquet file sets under `<landing>/<dataset>/`, and the nations as a Delta table that the tool
keeps, `<landing>/ingest/nation` (an external table: the platform only reads it).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake

from jobs.table import external_table_path

DATASETS = ("orders", "lineitem", "customer")
NATION_TABLE = "ingest.nation"


def generate_landing(landing_dir: str | Path, scale_factor: float) -> Path:
    """Write `<landing_dir>/<dataset>/<dataset>.1.parquet` per dataset and the nation Delta table.

    Deterministic for a scale factor. Each file set is generated aside and moved in whole, as
    an ingestion tool that writes then renames would deliver it.
    """
    landing = Path(landing_dir)
    landing.mkdir(parents=True, exist_ok=True)
    tpchgen = Path(sys.executable).with_name("tpchgen-cli")
    if not tpchgen.exists():
        raise FileNotFoundError(f"tpchgen-cli not found next to {sys.executable}: run `make setup`")
    with tempfile.TemporaryDirectory(dir=landing, prefix=".generating-") as staging:
        subprocess.run(
            [str(tpchgen), "parquet",
             "--scale-factor", str(scale_factor), "--tables", ",".join((*DATASETS, "nation")),
             "--parts", "1", "--output-dir", staging, "--overwrite"],
            check=True,
        )
        nations = pq.read_table(Path(staging, "nation"))
        for dataset in DATASETS:
            shutil.rmtree(landing / dataset, ignore_errors=True)
            Path(staging, dataset).rename(landing / dataset)
    write_nations(landing, nations)
    return landing


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
    """Whether every dataset has its parquet files and the nation table exists."""
    landing = Path(landing_dir)
    return all(any((landing / name).glob("*.parquet")) for name in DATASETS) and DeltaTable.is_deltatable(
        external_table_path(str(landing), NATION_TABLE)
    )
