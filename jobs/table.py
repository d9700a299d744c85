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
class Table:
    """One Delta table.

    `name` is `schema.table`; the catalog is the platform's setting. `inputs` maps each
    parameter of `transform` to what it reads: another table's name or landing files.
    """

    name: str
    inputs: Mapping[str, str | LandingFiles]
    transform: Callable[..., DataFrame]
    write: WriteMode = Overwrite()
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
