"""Layout upkeep of the tables the platform writes: small files compacted, old files vacuumed.

Both run in a table's own job, right after every UPKEEP_EVERY_COMMITS-th commit of the table
(about every ten days for a table updated daily):

- **Compaction**, for tables clustered by day: OPTIMIZE bin-packs the files under 1 MB (mostly
  days appended one at a time) into files of up to 8 MB (jobs/warehouse.py). Larger files, such
  as a history's sorted files, are left as they are, so their days stay apart.
- **VACUUM**, for every table, with the table's own retention, `delta.deletedFileRetentionDuration`
  (Delta's default, 7 days): it deletes only files that no version of the last 7 days needs.
  That is also how far back Delta lets a version be read (time travel), so a version a
  materialization pinned can be read back for 7 days after it was superseded, vacuumed or not;
  past that, reading it fails with PinnedVersionExpired.
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from jobs.warehouse import Warehouse

UPKEEP_EVERY_COMMITS = 10


def upkeep_when_due(spark: SparkSession, warehouse: Warehouse, name: str, version: int, compact: bool) -> bool:
    """After commit `version` of table `name`, when it is a multiple of UPKEEP_EVERY_COMMITS:
    compact the table's small files (if `compact`), then VACUUM it; whether it ran."""
    if version == 0 or version % UPKEEP_EVERY_COMMITS:
        return False
    upkeep(spark, warehouse, name, compact)
    return True


def upkeep(spark: SparkSession, warehouse: Warehouse, name: str, compact: bool) -> None:
    """Compact table `name`'s small files (if `compact`), then VACUUM it."""
    if compact:
        warehouse.compact(spark, name)
    warehouse.vacuum(spark, name)
