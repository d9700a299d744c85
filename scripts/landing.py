"""TPC-H landing data: parquet files per dataset, as an ingestion tool would drop them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DATASETS = ("orders", "lineitem", "customer", "nation")


def generate_landing(landing_dir: str | Path, scale_factor: float) -> Path:
    """Write `<landing_dir>/<dataset>/<dataset>.1.parquet` for each dataset (deterministic)."""
    landing = Path(landing_dir)
    landing.mkdir(parents=True, exist_ok=True)
    tpchgen = Path(sys.executable).with_name("tpchgen-cli")
    if not tpchgen.exists():
        raise FileNotFoundError(f"tpchgen-cli not found next to {sys.executable}: run `make setup`")
    subprocess.run(
        [str(tpchgen), "parquet",
         "--scale-factor", str(scale_factor), "--tables", ",".join(DATASETS),
         "--parts", "1", "--output-dir", str(landing), "--overwrite"],
        check=True,
    )
    return landing


def has_landing(landing_dir: str | Path) -> bool:
    """Whether every dataset has its parquet files (an interrupted generation has not)."""
    return all(any(Path(landing_dir, name).glob("*.parquet")) for name in DATASETS)
