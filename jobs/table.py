"""The declaration of one Delta table: its name, inputs, write mode and transform.

Plain data: the orchestrator reads declarations without Spark.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from jobs.checks import Check, SchemaContract


@dataclass(frozen=True)
class LandingFiles:
    """Parquet files that another system lands under `<landing>/<dataset>/`."""

    dataset: str


@dataclass(frozen=True)
class Overwrite:
    """Replace the table's contents in one Delta commit."""


@dataclass(frozen=True)
class Append:
    """Add the transform's rows to the table in one Delta commit."""


@dataclass(frozen=True)
class Merge:
    """Upsert the transform's rows on `keys`: matched rows are updated, new rows inserted."""

    keys: tuple[str, ...]


@dataclass(frozen=True)
class IngestNewFiles:
    """Append the rows of the landing files that the table has not ingested yet, each file
    exactly once.

    Each row carries the file it came from in SOURCE_COLUMNS (jobs/columns.py), so the record
    of what was ingested is committed with the rows themselves: a retried or killed job neither
    skips nor repeats a file. A file that changed after it was ingested (same name, another
    size or time) fails the build, naming it: land corrections as new files. The transform must
    keep SOURCE_COLUMNS (`select_typed` does).
    """


WriteMode = Overwrite | Append | Merge | IngestNewFiles


@dataclass(frozen=True)
class WhenAnyInputUpdates:
    """Run once any input table has a new version since this table's last run."""


@dataclass(frozen=True)
class WhenAllInputsUpdate:
    """Run once every input table has a new version since this table's last run."""


@dataclass(frozen=True)
class OnCron:
    """Run at each tick of `schedule`, once every input has updated since the previous tick."""

    schedule: str
    timezone: str = "UTC"


@dataclass(frozen=True)
class ByHandOnly:
    """Never started by automation: only from the UI, the CLI or a test."""


Trigger = WhenAnyInputUpdates | WhenAllInputsUpdate | OnCron | ByHandOnly


@dataclass(frozen=True)
class DailyPartitions:
    """One partition per day of `column` (a date), from `start` up to `end` (exclusive).

    A run of one day, or of a range of days, rewrites exactly those days of the table (Delta's
    replaceWhere): the rest is untouched, and running a day twice leaves the same contents.
    """

    column: str
    start: str  # YYYY-MM-DD
    end: str  # YYYY-MM-DD, the day after the last partition


@dataclass(frozen=True)
class Retry:
    """How often a failed job is run again, and after how long (doubling each time)."""

    max_retries: int = 2
    delay_seconds: float = 15.0


@dataclass(frozen=True)
class FailOnBadRows:
    """A row the transform marks as bad (`REJECT_COLUMN` set) fails the job, with the count."""


@dataclass(frozen=True)
class Quarantine:
    """Rows the transform marks as bad go to `table` (appended, with the reason and the run),
    the others to the table; the count is reported."""

    table: str


BadRows = FailOnBadRows | Quarantine
# The companion table `<schema>.<table><RECORD_SUFFIX>` of an IngestNewFiles table records the
# landing files it holds (jobs/ingestion_record.py).
RECORD_SUFFIX = "__ingested_files"
# A transform marks a bad row by setting this column to the reason (see jobs/columns.py).
REJECT_COLUMN = "_rejected_because"


@dataclass(frozen=True)
class Table:
    """One Delta table.

    `name` is `schema.table`; the catalog is the platform's setting. `inputs` maps each
    parameter of `transform` to what it reads: another table's name (declared here or as an
    ExternalTable) or landing files. `trigger` says when automation runs it; a new landing
    file set counts as a new version of that input.
    """

    name: str
    inputs: Mapping[str, str | LandingFiles]
    transform: Callable  # input DataFrames by parameter name -> the table's DataFrame
    write: WriteMode = Overwrite()
    trigger: Trigger = WhenAnyInputUpdates()
    partitions: DailyPartitions | None = None
    checks: tuple[Check, ...] = ()
    bad_rows: BadRows = FailOnBadRows()
    retry: Retry = Retry()
    # Whether a write may add columns (Delta's mergeSchema); otherwise a changed schema fails.
    schema_evolution: bool = False
    # For a daily table: per input parameter, which days new rows of that input touch. Either
    # the input's date column that holds this table's day (a build of some days then reads only
    # those days of the input, plus its rows without a date), or a function
    # `(new_rows, inputs) -> DataFrame` with one date column, `inputs` being this table's other
    # inputs at their latest version. New rows of an input not named here touch every day.
    days_touched: Mapping[str, str | Callable] = field(default_factory=dict)
    # A date column the table's files are laid out by: each write sorts its rows by it into
    # files of at most ROWS_PER_SORTED_FILE rows (jobs/warehouse.py), so that a read of a few days skips the
    # other files by their statistics (Delta data skipping).
    clustered_by_day: str | None = None
    description: str = ""
    module: str = field(default="", compare=False)  # filled in by discovery, for error messages

    @property
    def schema(self) -> str:
        return self.name.split(".")[0]

    @property
    def table(self) -> str:
        return self.name.split(".")[-1]

    @property
    def table_inputs(self) -> dict[str, str]:
        """Parameter -> name of each input that is a table."""
        return {param: src for param, src in self.inputs.items() if isinstance(src, str)}

    @property
    def contract(self) -> SchemaContract | None:
        """The table's declared schema contract, if one of its checks is one."""
        return next((c for c in self.checks if isinstance(c, SchemaContract)), None)

    @property
    def landing_datasets(self) -> set[str]:
        """The landing datasets the table reads."""
        return {src.dataset for src in self.inputs.values() if isinstance(src, LandingFiles)}


@dataclass(frozen=True)
class ExternalTable:
    """A Delta table that another system writes (an ingestion tool, another team's job).

    The platform never writes it: Dagster observes its Delta log, and its new versions start
    the tables that read it. Locally it lives in the landing area, `<landing>/<schema>/<table>`;
    without a warehouse directory (Unity Catalog) it is the catalog table of the same name.
    """

    name: str
    description: str = ""
    # The columns and types readers rely on; a version that breaks it fails their builds.
    contract: SchemaContract | None = None
    module: str = field(default="", compare=False)

    @property
    def schema(self) -> str:
        return self.name.split(".")[0]


def external_table_path(landing_root: str, name: str) -> str:
    """Where an external table `schema.table` lives in a local landing directory."""
    schema, table = name.split(".")
    return str(Path(landing_root) / schema / table)
