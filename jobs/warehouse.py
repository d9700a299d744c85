"""Where tables and landing files live for a job, and the Delta reads and writes on them.

Tables live either in a directory, `<root>/<catalog>/<schema>/<table>` (local), or in the
metastore under their three-part name (Unity Catalog on Databricks) when there is no root.
External tables (written by other systems) live in the landing area locally,
`<landing>/<schema>/<table>`, and in the metastore otherwise.

Everything here is DataFrame reads and writes and Delta SQL (`MERGE INTO`, `RESTORE`,
`DESCRIBE HISTORY`): nothing from `delta.tables`, no SparkContext or RDDs, so it runs on a Spark Connect
session (the local warm server, Databricks serverless and standard access mode) as well as on
a classic one.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, DataFrameReader, DataFrameWriter, Observation, SparkSession
from pyspark.sql.utils import is_remote

from jobs.columns import SOURCE_COLUMNS
from jobs.contract import DayRange
from jobs.landing_files import LandingFile, list_landing
from jobs.table import Append, IngestNewFiles, Merge, WriteMode, external_table_path

# What Spark and Delta say when a table or path holds no Delta table yet.
_NO_TABLE = {"DELTA_TABLE_ONLY_OPERATION", "DELTA_MISSING_DELTA_TABLE", "DELTA_TABLE_NOT_FOUND",
             "PATH_NOT_FOUND", "TABLE_OR_VIEW_NOT_FOUND", "DELTA_PATH_DOES_NOT_EXIST"}
_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
# Tables created while this is set record a change data feed (read by change_feed()).
_CHANGE_FEED_DEFAULT = "spark.databricks.delta.properties.defaults.enableChangeDataFeed"
# How far back a job looks for its own commit when other writers committed after it.
_HISTORY_SEARCH = 50
# A table clustered by day is written in files of at most this many rows, sorted by the day: a
# day's read then opens one or two files. Smaller files cost a full scan more per file (measured
# at scale factor 1 on a day of orders: 0.60 MB read with files of 100,000 rows, 0.44 MB with 50,000).
ROWS_PER_SORTED_FILE = 50_000
# Tables created while this is set keep file statistics (min, max, nulls) on those columns only.
_STATS_COLUMNS_DEFAULT = "spark.databricks.delta.properties.defaults.dataSkippingStatsColumns"
# A table clustered by day keeps statistics on its day and its rows' landing time, what the
# platform's reads skip files by (a day; the orders landed with line items). Statistics on every
# column would make each file's entry in the Delta log, which every read of a version loads, four
# times longer: measured at scale factor 3, a day's read of line items' log went from 174 KB over
# 18 months to 657 KB over 6.5 years.
_SKIPPING_COLUMNS = ("_source_modified_us",)
# Compaction (OPTIMIZE) bin-packs the files under 1 MB (mostly days appended one at a time) into
# files of up to 8 MB, and leaves larger files, such as a history's sorted files, as they are.
_COMPACTION = {
    "spark.databricks.delta.optimize.minFileSize": str(1 << 20),
    "spark.databricks.delta.optimize.maxFileSize": str(8 << 20),
}
# How long a classic session's write may take to report what it observed (Spark hands the
# metrics over on its listener bus, after the write returns).
_OBSERVED_WAIT_SECONDS = 5.0
# What Delta says when a version is older than the table's deletedFileRetentionDuration.
_BEYOND_RETENTION = "DELTA_UNSUPPORTED_TIME_TRAVEL_BEYOND_DELETED_FILE_RETENTION_DURATION"


class PinnedVersionExpired(LookupError):
    """A version older than the table's retention window, which Delta no longer reads."""


@dataclass(frozen=True)
class Commit:
    """One Delta commit the job made."""

    version: int
    operation: str
    files_written: int
    bytes_written: int
    read_version: int | None  # the version the commit was made on; None when it created the table
    mode: str | None = None  # a WRITE's save mode (Append, Overwrite, ...)
    # What the write observed of the rows it wrote (Warehouse.write's `observe`); None when not
    # asked, or when the write did not run its query.
    observed: Mapping[str, Any] | None = None


class CommitNotFound(RuntimeError):
    """A write's commit is not in the table's recent history (Delta skipped it as a repeat)."""


@dataclass(frozen=True)
class WriteTxn:
    """One logical write of a table (`app_id`: the table and the Dagster run): a retried job
    repeats it and Delta skips it the second time; another run is another write. `label`
    (the app id unless set) is the commit's userMetadata, to find the commit again among
    concurrent writers'."""

    app_id: str
    version: int = 0
    label: str | None = None

    @property
    def tag(self) -> str:
        return self.label or self.app_id


@dataclass(frozen=True)
class Days:
    """The days `start` (inclusive) to `end` (exclusive), YYYY-MM-DD, of the date `column`."""

    column: str
    start: str
    end: str

    @classmethod
    def of(cls, column: str, days: DayRange) -> "Days":
        return cls(column, days.start, days.end)

    @property
    def condition(self) -> str:
        return f"`{self.column}` >= DATE'{self.start}' AND `{self.column}` < DATE'{self.end}'"

    def on(self, column: str) -> "Days":
        """The same days of another table's date column."""
        return Days(column, self.start, self.end)

    def select(self, df: DataFrame) -> DataFrame:
        return df.where(self.condition)

    def select_with_undated(self, df: DataFrame) -> DataFrame:
        """The rows of these days and those without a date (a null in the column)."""
        return df.where(f"({self.condition}) OR `{self.column}` IS NULL")


@dataclass(frozen=True)
class Warehouse:
    """The tables of one catalog, and the landing directory."""

    catalog: str
    landing_root: str
    root: str | None = None  # None: catalog tables, addressed by name
    external: frozenset[str] = frozenset()  # names of the tables other systems write

    def full_name(self, name: str) -> str:
        return f"{self.catalog}.{name}"

    def location(self, name: str) -> str:
        """The table's directory, or its three-part name for a catalog table."""
        if self.root is None:
            return self.full_name(name)
        if name in self.external:
            return external_table_path(self.landing_root, name)
        schema, table = name.split(".")
        return str(Path(self.root) / self.catalog / schema / table)

    def _sql_name(self, name: str) -> str:
        """The table as Delta SQL names it."""
        if self.root is None:
            return ".".join(f"`{part}`" for part in self.full_name(name).split("."))
        return f"delta.`{self.location(name)}`"

    def current_version(self, spark: SparkSession, name: str) -> int | None:
        """The table's latest version, None if it does not exist."""
        latest = self._history(spark, name, 1)
        return latest[0].version if latest else None

    def latest_version(self, spark: SparkSession, name: str) -> int:
        """The table's latest version; a missing table is an error naming it and where it was looked for."""
        version = self.current_version(spark, name)
        if version is not None:
            return version
        if name in self.external:
            raise FileNotFoundError(
                f"external table {self.full_name(name)} does not exist at {self.location(name)}: "
                "the system that writes it has not delivered it yet"
            )
        raise FileNotFoundError(
            f"input table {self.full_name(name)} does not exist at {self.location(name)}: "
            "materialize it first"
        )

    def read_table(self, spark: SparkSession, name: str, version: int) -> DataFrame:
        """The table exactly as it was at `version`."""
        reader = spark.read.format("delta").option("versionAsOf", version)
        return self._load(reader, name)

    def read_pinned(self, spark: SparkSession, name: str, version: int) -> DataFrame:
        """The table at `version`, an input's pinned version; PinnedVersionExpired, naming it,
        when the version is older than the table's retention window."""
        table = self.read_table(spark, name, version)
        try:
            table.schema  # noqa: B018 - a Connect DataFrame resolves its version only here
        except AnalysisException as error:
            if error.getCondition() != _BEYOND_RETENTION:
                raise
            raise PinnedVersionExpired(
                f"{self.full_name(name)} version {version} is older than the table's retention window "
                "(delta.deletedFileRetentionDuration, 7 days by default): Delta no longer reads it, and "
                "VACUUM may have deleted its files. Build from the latest version instead (materialize "
                "the table that read it again)") from None
        return table

    def read_latest(self, spark: SparkSession, name: str) -> DataFrame | None:
        """The table at its latest version, None if it does not exist (one schema lookup, where
        `current_version` and `read_table` would also read its history)."""
        reader = spark.read.format("delta")
        try:
            latest = self._load(reader, name)
            latest.schema  # noqa: B018 - a Connect DataFrame resolves its table only here
        except AnalysisException as error:
            if error.getCondition() in _NO_TABLE:
                return None
            raise
        return latest

    def ingested_files(self, spark: SparkSession, name: str, version: int | None) -> set[LandingFile]:
        """The landing files whose rows the table holds at `version` (none without a table)."""
        if version is None:
            return set()
        return landing_files_of(self.read_table(spark, name, version))

    def change_feed(self, spark: SparkSession, name: str, version: int) -> DataFrame:
        """The rows that commit `version` inserted or changed to (Delta's change data feed)."""
        reader = (spark.read.format("delta").option("readChangeFeed", "true")
                  .option("startingVersion", version).option("endingVersion", version))
        rows = self._load(reader, name)
        return (rows.where("_change_type IN ('insert', 'update_postimage')")
                .drop("_change_type", "_commit_version", "_commit_timestamp"))

    def _load(self, reader: DataFrameReader, name: str) -> DataFrame:
        """The table through `reader`: by name from the catalog, or from its directory."""
        return reader.table(self.location(name)) if self.root is None else reader.load(self.location(name))

    def landing_path(self, dataset: str) -> str:
        return str(Path(self.landing_root) / dataset)

    def read_landing(self, spark: SparkSession, dataset: str) -> DataFrame:
        list_landing(self.landing_root, dataset)  # a dataset without files is an error naming it
        return spark.read.parquet(self.landing_path(dataset))

    def write(
        self, spark: SparkSession, name: str, df: DataFrame, mode: WriteMode,
        txn: WriteTxn, merge_schema: bool = False, days: Days | None = None, change_feed: bool = False,
        sort_by_day: str | None = None, observe: Mapping[str, Column] | None = None,
    ) -> Commit:
        """Write `df` as one Delta commit and return it.

        A failure before the commit leaves the table as it was. The commit carries `txn`
        (Delta's txnAppId / txnVersion): if this transaction already committed, as when a
        retried job repeats its write, Delta skips the write and the earlier commit is
        returned. A concurrent writer's commit makes Delta raise a concurrent modification
        error, never a mixed table. With `days` (the date column and its range), an Overwrite
        replaces only those days. With `change_feed`, a table this write creates records Delta's
        change data feed (change_feed()). With `sort_by_day` (a date column), the rows are written
        sorted by it, in files of at most ROWS_PER_SORTED_FILE rows, and a table this write creates
        keeps file statistics on that column and _SKIPPING_COLUMNS only. With `observe` (named
        aggregates), the commit holds their values over the rows written, taken as they are
        written (not for a Merge, nor for a write Delta skips as a repeat, nor where Spark Connect
        does not hand them over: a catalog table's creation or replacement).
        """
        # The commit's userMetadata comes from the session: Delta ignores the writer option when
        # an append creates a catalog table.
        settings = {_USER_METADATA: txn.tag}
        if change_feed:
            settings[_CHANGE_FEED_DEFAULT] = "true"
        if sort_by_day is not None:
            settings[_STATS_COLUMNS_DEFAULT] = ",".join([sort_by_day, *(c for c in _SKIPPING_COLUMNS if c in df.columns)])
        observation = None
        with _session_conf(spark, settings):
            if isinstance(mode, Merge) and self.current_version(spark, name) is not None:
                self._merge(spark, name, df, mode, txn, merge_schema)
            else:
                # Delta cannot merge into a table that does not exist: the first Merge creates it.
                if sort_by_day is not None:
                    # A global sort: each file then holds a run of consecutive days.
                    df = df.orderBy(sort_by_day)
                if observe:
                    # Above the sort: the sort's sampling pass runs the plan below it, and an
                    # observation there would count its rows twice.
                    observation = Observation(f"write {uuid.uuid4().hex}")
                    df = df.observe(observation, *[metric.alias(name) for name, metric in observe.items()])
                writer = (
                    df.write.format("delta")
                    .mode("append" if isinstance(mode, Append | IngestNewFiles) else "overwrite")
                    .option("txnAppId", txn.app_id)
                    .option("txnVersion", txn.version)
                    .option("mergeSchema", str(merge_schema).lower())
                    .option("maxRecordsPerFile", ROWS_PER_SORTED_FILE if sort_by_day else 0)
                )
                if days is not None:
                    writer = writer.option("replaceWhere", days.condition)
                self._save(spark, writer, name)
        commit = self._commit_of(spark, name, txn.tag)
        return replace(commit, observed=_observed(observation)) if observation is not None else commit

    def _merge(self, spark: SparkSession, name: str, df: DataFrame, mode: Merge, txn: WriteTxn,
               merge_schema: bool) -> None:
        source = f"merge_source_{uuid.uuid4().hex}"  # a temporary view of this session
        on = " AND ".join(f"t.`{key}` <=> s.`{key}`" for key in mode.keys)
        df.createOrReplaceTempView(source)
        # MERGE takes its transaction id from session settings.
        with _session_conf(spark, {
            "spark.databricks.delta.write.txnAppId": txn.app_id,
            "spark.databricks.delta.write.txnVersion": str(txn.version),
            "spark.databricks.delta.schema.autoMerge.enabled": str(merge_schema).lower(),
        }):
            try:
                spark.sql(
                    f"MERGE INTO {self._sql_name(name)} t USING {source} s ON {on} "
                    "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
                ).collect()
            finally:
                spark.catalog.dropTempView(source)

    def undo(self, spark: SparkSession, name: str, version: int, days: Days | None,
             tag: str) -> Commit:
        """Give the table (or just `days` of it) the contents of `version` again, as a commit
        tagged `tag`."""
        with _session_conf(spark, {_USER_METADATA: tag}):
            if days is None:
                spark.sql(f"RESTORE TABLE {self._sql_name(name)} TO VERSION AS OF {version}").collect()
            else:
                earlier = days.select(self.read_table(spark, name, version))
                writer = earlier.write.format("delta").mode("overwrite").option("replaceWhere", days.condition)
                self._save(spark, writer, name)
        return self._commit_of(spark, name, tag)

    def _save(self, spark: SparkSession, writer: DataFrameWriter, name: str) -> None:
        if self.root is None:
            spark.sql(f"CREATE SCHEMA IF NOT EXISTS {self.catalog}.{name.split('.')[0]}")
            writer.saveAsTable(self.full_name(name))
        else:
            writer.save(self.location(name))

    def compact(self, spark: SparkSession, name: str) -> None:
        """Bin-pack the table's small files (OPTIMIZE). Not on a catalog (Databricks): serverless
        compute refuses the settings, and Unity Catalog's predictive optimization compacts
        managed tables there."""
        if self.root is None:
            return
        with _session_conf(spark, _COMPACTION):
            spark.sql(f"OPTIMIZE {self._sql_name(name)}").collect()

    def vacuum(self, spark: SparkSession, name: str) -> None:
        """Delete the files no version within the table's retention window needs."""
        spark.sql(f"VACUUM {self._sql_name(name)}").collect()

    def drop(self, spark: SparkSession, name: str) -> None:
        """Remove the table, files and all (for a first version that must not be read)."""
        if self.root is None:
            spark.sql(f"DROP TABLE IF EXISTS {self.full_name(name)}").collect()
        else:
            shutil.rmtree(self.location(name), ignore_errors=True)

    def commit_at(self, spark: SparkSession, name: str, version: int) -> Commit:
        """The table's commit that made `version`."""
        history = spark.sql(f"DESCRIBE HISTORY {self._sql_name(name)}").where(f"version = {version}")
        return _commit(history.collect()[0])

    def commits_after(self, spark: SparkSession, name: str, version: int, latest: int) -> list[Commit]:
        """The table's commits after `version` up to `latest`, oldest first (reading only those
        commits' log entries)."""
        entries = self._history(spark, name, latest - version)
        return sorted((_commit(e) for e in entries if version < e.version <= latest), key=lambda c: c.version)

    def _commit_of(self, spark: SparkSession, name: str, tag: str) -> Commit:
        """The commit tagged `tag`: usually the latest, else among the last few (other writers
        may have committed since)."""
        for limit in (1, _HISTORY_SEARCH):
            # An OPTIMIZE run after the write in the same session (Delta's auto compaction, where
            # a table or session enables it) carries the write's tag too.
            entry = next((e for e in self._history(spark, name, limit)
                          if e.userMetadata == tag and e.operation != "OPTIMIZE"), None)
            if entry is not None:
                return _commit(entry)
        raise CommitNotFound(f"the commit of {tag} is not among the last {_HISTORY_SEARCH} commits of "
                           f"{self.full_name(name)}")

    def _history(self, spark: SparkSession, name: str, limit: int) -> list:
        """The newest `limit` entries of the table's history; empty when there is no table."""
        try:
            return spark.sql(f"DESCRIBE HISTORY {self._sql_name(name)} LIMIT {limit}").collect()
        except AnalysisException as error:
            if error.getCondition() in _NO_TABLE:
                return []
            raise


def landing_files_of(rows: DataFrame) -> set[LandingFile]:
    """The landing files that ingested `rows` came from (their SOURCE_COLUMNS)."""
    return {LandingFile(*row) for row in rows.select(*SOURCE_COLUMNS).distinct().collect()}


def _observed(observation: Observation) -> dict[str, Any] | None:
    """The metrics `observation` took during a write; None when the write did not run its query
    (Delta skipped it) or, on a classic session, did not hand them over within _OBSERVED_WAIT_SECONDS."""
    if is_remote():  # Spark Connect returns them with the write's result: {} if it had none
        return observation.get or None
    # A classic session's Observation.get waits for the query, for ever if it never ran.
    metrics: dict[str, Any] = {}
    waiting = threading.Thread(target=lambda: metrics.update(observation.get), daemon=True)
    waiting.start()
    waiting.join(_OBSERVED_WAIT_SECONDS)
    return dict(metrics) or None


@contextmanager
def _session_conf(spark: SparkSession, settings: dict[str, str]):
    previous = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def _commit(entry) -> Commit:
    metrics = entry["operationMetrics"] or {}
    files = metrics.get("numFiles") or metrics.get("numTargetFilesAdded") or "0"
    size = metrics.get("numOutputBytes") or metrics.get("numTargetBytesAdded") or "0"
    return Commit(
        version=entry["version"],
        operation=entry["operation"],
        files_written=int(files),
        bytes_written=int(size),
        read_version=entry["readVersion"],
        mode=(entry["operationParameters"] or {}).get("mode"),
    )
