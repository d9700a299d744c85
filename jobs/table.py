"""The declaration of one Delta table: its name, inputs, write mode and transform."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pyspark.sql import DataFrame


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


WriteMode = Overwrite | Append | Merge


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
class Table:
    """One Delta table.

    `name` is `schema.table`; the catalog is the platform's setting. `inputs` maps each
    parameter of `transform` to what it reads: another table's name (declared here or as an
    ExternalTable) or landing files. `trigger` says when automation runs it; a new landing
    file set counts as a new version of that input.
    """

    name: str
    inputs: Mapping[str, str | LandingFiles]
    transform: Callable[..., DataFrame]
    write: WriteMode = Overwrite()
    trigger: Trigger = WhenAnyInputUpdates()
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
    module: str = field(default="", compare=False)

    @property
    def schema(self) -> str:
        return self.name.split(".")[0]
