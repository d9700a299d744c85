"""Layout upkeep of the tables the platform writes: small files compacted, old files vacuumed.

- **Compaction** is Delta's auto compaction, on the commits of tables clustered by day
  (jobs/warehouse.py, AUTO_COMPACTION): after such a commit, once 50 files under 1 MB have
  gathered (mostly days appended one at a time), Delta bin-packs them into files of up to 8 MB,
  as an OPTIMIZE commit of its own. Larger files (a history's sorted files) are left as they
  are, so their days stay apart.
- **VACUUM** runs after every VACUUM_EVERY_COMMITS-th commit of a table, with the table's own
  retention, `delta.deletedFileRetentionDuration` (Delta's default, 7 days): it deletes only
  files that no version of the last 7 days needs. That is also how far back Delta lets a
  version be read (time travel), so a version a materialization pinned can be read back for
  7 days after it was superseded, vacuumed or not; past that, reading it fails with
  PinnedVersionExpired.
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from jobs.warehouse import Warehouse

VACUUM_EVERY_COMMITS = 10


def vacuum_when_due(spark: SparkSession, warehouse: Warehouse, name: str, version: int) -> bool:
    """VACUUM `name` if `version` (its commit just made) is a multiple of VACUUM_EVERY_COMMITS;
    whether it ran. The table's retention decides what is old enough to delete."""
    if version == 0 or version % VACUUM_EVERY_COMMITS:
        return False
    warehouse.vacuum(spark, name)
    return True
