"""Where tables and landing files live for a job, and the Delta reads and writes on them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

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
    """A directory of Delta tables, `<root>/<catalog>/<schema>/<table>`, and a landing directory."""

    root: str
    catalog: str
    landing_root: str

    def full_name(self, name: str) -> str:
        return f"{self.catalog}.{name}"

    def table_path(self, name: str) -> str:
        schema, table = name.split(".")
        return str(Path(self.root) / self.catalog / schema / table)

    def latest_version(self, spark: SparkSession, name: str) -> int:
        path = self.table_path(name)
        if not DeltaTable.isDeltaTable(spark, path):
            raise FileNotFoundError(
                f"input table {self.full_name(name)} does not exist at {path}: materialize it first"
            )
        return _last_commit(spark, path).version

    def read_table(self, spark: SparkSession, name: str, version: int) -> DataFrame:
        """The table exactly as it was at `version`."""
        path = self.table_path(name)
        return spark.read.format("delta").option("versionAsOf", version).load(path)

    def landing_path(self, dataset: str) -> str:
        return str(Path(self.landing_root) / dataset)

    def read_landing(self, spark: SparkSession, dataset: str) -> DataFrame:
        path = Path(self.landing_path(dataset))
        if not any(path.glob("*.parquet")):
            raise FileNotFoundError(f"landing files for '{dataset}' not found: no *.parquet in {path}")
        return spark.read.parquet(str(path))

    def write(self, spark: SparkSession, name: str, df: DataFrame, mode: WriteMode) -> Commit:
        """Write `df` as one Delta commit; a failure before the commit leaves the table as it was."""
        path = self.table_path(name)
        exists = DeltaTable.isDeltaTable(spark, path)
        if isinstance(mode, Merge) and exists:
            on = " AND ".join(f"t.`{key}` <=> s.`{key}`" for key in mode.keys)
            (
                DeltaTable.forPath(spark, path).alias("t")
                .merge(df.alias("s"), on)
                .whenMatchedUpdateAll()
                .whenNotMatchedInsertAll()
                .execute()
            )
        else:
            # Delta cannot merge into a table that does not exist: the first Merge creates it.
            spark_mode = "append" if isinstance(mode, Append) else "overwrite"
            df.write.format("delta").mode(spark_mode).save(path)
        return _last_commit(spark, path)


def _last_commit(spark: SparkSession, path: str) -> Commit:
    entry = DeltaTable.forPath(spark, path).history(1).first()
    metrics = entry["operationMetrics"] or {}
    files = metrics.get("numFiles") or metrics.get("numTargetFilesAdded") or "0"
    size = metrics.get("numOutputBytes") or metrics.get("numTargetBytesAdded") or "0"
    return Commit(
        version=entry["version"],
        operation=entry["operation"],
        files_written=int(files),
        bytes_written=int(size),
    )
