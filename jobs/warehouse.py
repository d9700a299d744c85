"""Where tables and landing files live for a job, and the Delta reads and writes on them.

Tables live either in a directory, `<root>/<catalog>/<schema>/<table>` (local), or in the
metastore under their three-part name (Unity Catalog on Databricks) when there is no root.
External tables (written by other systems) live in the landing area locally,
`<landing>/<schema>/<table>`, and in the metastore otherwise.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, DataFrameReader, DataFrameWriter, SparkSession

from jobs.table import Append, Merge, WriteMode


@dataclass(frozen=True)
class Commit:
    """One Delta commit the job made."""

    version: int
    operation: str
    files_written: int
    bytes_written: int


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

    def _delta_table(self, spark: SparkSession, name: str) -> DeltaTable | None:
        if self.root is None:
            if not spark.catalog.tableExists(self.full_name(name)):
                return None
            return DeltaTable.forName(spark, self.full_name(name))
        path = self.location(name)
        return DeltaTable.forPath(spark, path) if DeltaTable.isDeltaTable(spark, path) else None

    def latest_version(self, spark: SparkSession, name: str) -> int:
        table = self._delta_table(spark, name)
        if table is None:
            if name in self.external:
                raise FileNotFoundError(
                    f"external table {self.full_name(name)} does not exist at {self.location(name)}: "
                    "the system that writes it has not delivered it yet"
                )
            raise FileNotFoundError(
                f"input table {self.full_name(name)} does not exist at {self.location(name)}: "
                "materialize it first"
            )
        return _last_commit(table).version

    def current_version(self, spark: SparkSession, name: str) -> int | None:
        """The table's latest version, None if it does not exist."""
        table = self._delta_table(spark, name)
        return None if table is None else _last_commit(table).version

    def read_table(self, spark: SparkSession, name: str, version: int) -> DataFrame:
        """The table exactly as it was at `version`."""
        reader = spark.read.format("delta").option("versionAsOf", version)
        return self._load(reader, name)

    def _load(self, reader: DataFrameReader, name: str) -> DataFrame:
        return reader.table(self.location(name)) if self.root is None else reader.load(self.location(name))

    def landing_path(self, dataset: str) -> str:
        return str(Path(self.landing_root) / dataset)

    def read_landing(self, spark: SparkSession, dataset: str) -> DataFrame:
        path = Path(self.landing_path(dataset))
        if not any(path.glob("*.parquet")):
            raise FileNotFoundError(f"landing files for '{dataset}' not found: no *.parquet in {path}")
        return spark.read.parquet(str(path))

    def write(
        self, spark: SparkSession, name: str, df: DataFrame, mode: WriteMode,
        txn: WriteTxn, merge_schema: bool = False, days: Days | None = None,
    ) -> Commit:
        """Write `df` as one Delta commit and return it.

        A failure before the commit leaves the table as it was. The commit carries `txn`
        (Delta's txnAppId / txnVersion): if this transaction already committed, as when a
        retried job repeats its write, Delta skips the write and the earlier commit is
        returned. A concurrent writer's commit makes Delta raise a concurrent modification
        error, never a mixed table. With `days`, an Overwrite replaces only those days.
        """
        existing = self._delta_table(spark, name)
        if isinstance(mode, Merge) and existing is not None:
            on = " AND ".join(f"t.`{key}` <=> s.`{key}`" for key in mode.keys)
            # MERGE takes its transaction id and commit metadata from session settings.
            with _session_conf(spark, {
                "spark.databricks.delta.write.txnAppId": txn.app_id,
                "spark.databricks.delta.write.txnVersion": str(txn.version),
                "spark.databricks.delta.commitInfo.userMetadata": txn.tag,
                "spark.databricks.delta.schema.autoMerge.enabled": str(merge_schema).lower(),
            }):
                (
                    existing.alias("t")
                    .merge(df.alias("s"), on)
                    .whenMatchedUpdateAll()
                    .whenNotMatchedInsertAll()
                    .execute()
                )
        else:
            # Delta cannot merge into a table that does not exist: the first Merge creates it.
            writer = (
                df.write.format("delta")
                .mode("append" if isinstance(mode, Append) else "overwrite")
                .option("txnAppId", txn.app_id)
                .option("txnVersion", txn.version)
                .option("userMetadata", txn.tag)
                .option("mergeSchema", str(merge_schema).lower())
            )
            if days is not None and existing is not None:
                writer = writer.option("replaceWhere", days.condition)
            self._save(spark, writer, name)
        return _commit_of(self._delta_table(spark, name), txn)

    def undo(self, spark: SparkSession, name: str, version: int, days: Days | None) -> Commit:
        """Give the table (or just `days` of it) the contents of `version` again, as a commit."""
        if days is None:
            table = self._delta_table(spark, name)
            table.restoreToVersion(version)
            return _last_commit(table)
        earlier = days.select(self.read_table(spark, name, version))
        writer = earlier.write.format("delta").mode("overwrite").option("replaceWhere", days.condition)
        self._save(spark, writer, name)
        return _last_commit(self._delta_table(spark, name))

    def _save(self, spark: SparkSession, writer: DataFrameWriter, name: str) -> None:
        if self.root is None:
            spark.sql(f"CREATE SCHEMA IF NOT EXISTS {self.catalog}.{name.split('.')[0]}")
            writer.saveAsTable(self.full_name(name))
        else:
            writer.save(self.location(name))

    def drop(self, spark: SparkSession, name: str) -> None:
        """Remove the table, files and all (for a first version that must not be read)."""
        if self.root is None:
            spark.sql(f"DROP TABLE IF EXISTS {self.full_name(name)}")
        else:
            shutil.rmtree(self.location(name), ignore_errors=True)


@dataclass(frozen=True)
class Days:
    """The days `start` (inclusive) to `end` (exclusive), YYYY-MM-DD, of the date `column`."""

    column: str
    start: str
    end: str

    @property
    def condition(self) -> str:
        return f"`{self.column}` >= DATE'{self.start}' AND `{self.column}` < DATE'{self.end}'"

    def on(self, column: str) -> "Days":
        """The same days of another table's date column."""
        return Days(column, self.start, self.end)

    def select(self, df: DataFrame) -> DataFrame:
        return df.where(self.condition)


@dataclass(frozen=True)
class WriteTxn:
    """One logical write of a table (`app_id`: the table and the Dagster run): a retried job
    repeats it and Delta skips it the second time; another run is another write. The id is
    also the commit's userMetadata, to find the commit again among concurrent writers'."""

    app_id: str
    version: int = 0

    @property
    def tag(self) -> str:
        return self.app_id


def external_table_path(landing_root: str, name: str) -> str:
    """Where an external table `schema.table` lives in a landing directory."""
    schema, table = name.split(".")
    return str(Path(landing_root) / schema / table)


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


def _commit_of(table: DeltaTable, txn: WriteTxn) -> Commit:
    """The commit that `txn` made (the newest one if other writers committed since)."""
    history = table.history(50).select("version", "operation", "operationMetrics", "userMetadata")
    entry = history.where(history.userMetadata == txn.tag).orderBy(history.version.desc()).first()
    if entry is None:
        raise RuntimeError(f"the commit of {txn.tag} is not among the table's last 50 commits")
    return _commit(entry)


def _last_commit(table: DeltaTable) -> Commit:
    return _commit(table.history(1).first())


def _commit(entry) -> Commit:
    metrics = entry["operationMetrics"] or {}
    files = metrics.get("numFiles") or metrics.get("numTargetFilesAdded") or "0"
    size = metrics.get("numOutputBytes") or metrics.get("numTargetBytesAdded") or "0"
    return Commit(
        version=entry["version"],
        operation=entry["operation"],
        files_written=int(files),
        bytes_written=int(size),
    )
