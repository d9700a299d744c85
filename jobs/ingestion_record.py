"""The record of which landing files an ingesting table holds, read without scanning its rows.

The rows themselves are the truth: each carries the file it came from (SOURCE_COLUMNS), in the
same Delta commit, so a retried or killed job never skips or repeats a file. Reading that
truth means scanning the source columns of every row, which grows with the history. So each
ingestion also keeps a small companion table, `<schema>.<table>__ingested_files`: one row per
file, and the table version it is complete through. A job reads it, then catches up from the
table's own history for any commit after that version:

- an append (an ingestion the record missed, say killed before saving it, or another writer):
  the rows that commit added, from Delta's change data feed;
- a commit that leaves the rows as they are (OPTIMIZE, VACUUM, table properties): nothing;
- anything else (RESTORE, a full refresh, an undone write, DELETE, MERGE), or no record, or a
  history too short to reach it: the full scan of the rows, once.

The record is a cache of the rows, never ahead of them: a job saves it after its commit (while
the commit's checks run), and the next job catches up if it did not. A write that a blocking
check undoes is caught up too: the undo is not an append.
"""

from __future__ import annotations

from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession
from pyspark.sql.types import LongType, StringType, StructField, StructType

from jobs.landing_files import LandingFile
from jobs.table import RECORD_SUFFIX, Overwrite
from jobs.upkeep import upkeep_when_due
from jobs.warehouse import Warehouse, WriteTxn, landing_files_of

_SCHEMA = StructType([
    StructField("path", StringType(), False), StructField("size", LongType(), False),
    StructField("modified_us", LongType(), False), StructField("through_version", LongType(), False),
])
# Commits that change no row, so no file's presence.
_ROWS_UNCHANGED = {"OPTIMIZE", "VACUUM START", "VACUUM END", "SET TBLPROPERTIES", "UNSET TBLPROPERTIES",
                   "UPGRADE PROTOCOL", "ADD CONSTRAINT", "DROP CONSTRAINT"}


def record_name(table: str) -> str:
    """The companion table that records what `table` (schema.table) ingested."""
    return table + RECORD_SUFFIX


def ingested_files(spark: SparkSession, warehouse: Warehouse, table: str, version: int | None) -> set[LandingFile]:
    """The landing files whose rows `table` holds at `version` (none without a table)."""
    if version is None:
        return set()
    recorded = _recorded(spark, warehouse, table, version)
    return recorded if recorded is not None else warehouse.ingested_files(spark, table, version)


def save_record(spark: SparkSession, warehouse: Warehouse, table: str, version: int,
                files: set[LandingFile]) -> None:
    """Record that `table` holds exactly `files` at `version` (one small file, rewritten whole:
    a retry of the same version is skipped by its transaction id)."""
    rows = [(f.path, f.size, f.modified_us, version) for f in sorted(files, key=lambda f: f.path)]
    txn = WriteTxn(f"{warehouse.full_name(record_name(table))} record", version=version)
    commit = warehouse.write(spark, record_name(table), spark.createDataFrame(rows, _SCHEMA).coalesce(1), Overwrite(), txn)
    upkeep_when_due(spark, warehouse, record_name(table), commit.version, compact=False)


def _recorded(spark: SparkSession, warehouse: Warehouse, table: str, version: int) -> set[LandingFile] | None:
    """The files at `version` from the record and the commits after it; None when only a scan
    of the rows can tell."""
    record = warehouse.read_latest(spark, record_name(table))
    rows = record.collect() if record is not None else []
    if not rows or rows[0].through_version > version:
        return None
    files = {LandingFile(r.path, r.size, r.modified_us) for r in rows}
    through = rows[0].through_version
    if through == version:
        return files
    commits = warehouse.commits_after(spark, table, through, version)
    if [c.version for c in commits] != list(range(through + 1, version + 1)):
        return None  # the log no longer holds every commit since the record
    for commit in commits:
        if commit.operation in _ROWS_UNCHANGED:
            continue
        if commit.operation != "WRITE" or commit.mode != "Append":
            return None
        try:
            files |= landing_files_of(warehouse.change_feed(spark, table, commit.version))
        except AnalysisException:
            return None  # a table without Delta's change data feed
    return files
