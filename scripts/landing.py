"""TPC-H landing data: parquet files per dataset, as an ingestion tool would drop them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

DATASETS = ("orders", "lineitem", "customer", "nation")


def generate_landing(landing_dir: str | Path, scale_factor: float) -> Path:
    """Write `<landing_dir>/<dataset>/<dataset>.1.parquet` for each dataset (deterministic)."""
    landing = Path(landing_dir)
    landing.mkdir(parents=True, exist_ok=True)
    tpchgen = Path(sys.executable).with_name("tpchgen-cli")
    subprocess.run(
        [str(tpchgen if tpchgen.exists() else shutil.which("tpchgen-cli")), "parquet",
         "--scale-factor", str(scale_factor), "--tables", ",".join(DATASETS),
         "--parts", "1", "--output-dir", str(landing), "--overwrite"],
        check=True,
    )
    return landing
