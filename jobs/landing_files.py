"""Landing files as an ingesting table sees them: which are new, and their rows with the file
they came from (the table's write is IngestNewFiles)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

from jobs.spark import DataFrame, F


@dataclass(frozen=True)
class LandingFile:
    """One landing file: its path in the landing area (`<dataset>/<file>`, so the area can
    move), size in bytes and modification time (µs since the epoch)."""

    path: str
    size: int
    modified_us: int


class ChangedLandingFile(Exception):
    """A file that was ingested has changed since (same name, another size or time)."""


def list_landing(landing_root: str, dataset: str) -> list[LandingFile]:
    """The parquet files of a landing dataset, by name."""
    directory = Path(landing_root, dataset)
    files = sorted(directory.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"landing files for '{dataset}' not found: no *.parquet in {directory}")
    return [LandingFile(f"{dataset}/{f.name}", (st := os.stat(f)).st_size, st.st_mtime_ns // 1000)
            for f in files]


def new_files(listed: list[LandingFile], ingested: set[LandingFile], table: str) -> list[LandingFile]:
    """The listed files that `table` has not ingested. A listed file ingested with another size
    or time is an error naming it; a file ingested and since removed is ignored."""
    by_path = {f.path: f for f in ingested}
    changed = [f for f in listed if f.path in by_path and by_path[f.path] != f]
    if changed:
        details = "; ".join(
            f"{f.path} (ingested at {by_path[f.path].size} bytes, modified {by_path[f.path].modified_us} µs; "
            f"now {f.size} bytes, modified {f.modified_us} µs)" for f in changed)
        raise ChangedLandingFile(
            f"{table}: landing file(s) changed after they were ingested: {details}. A file is ingested "
            "once; land a correction as a new file (and remove or restore the changed one)")
    return [f for f in listed if f.path not in by_path]


def read_with_source(spark, landing_root: str, files: list[LandingFile]) -> DataFrame:
    """The rows of `files`, each with SOURCE_COLUMNS naming its file."""
    frames = [
        spark.read.parquet(str(Path(landing_root, f.path))).withColumns({
            "_source_file": F.lit(f.path),
            "_source_size": F.lit(f.size).cast("bigint"),
            "_source_modified_us": F.lit(f.modified_us).cast("bigint"),
        })
        for f in files
    ]
    return reduce(lambda all_rows, rows: all_rows.unionByName(rows), frames)
