"""Data checks declared with a table, evaluated by its job on the version it just wrote.

Each check is a small declaration with a pure `evaluate(df) -> CheckOutcome`; the job reports
outcomes to Dagster as asset checks. A blocking check that fails undoes the write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

SAMPLE_ROWS = 5


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    blocking: bool
    failing_count: int
    samples: list[dict] = field(default_factory=list)
    detail: str = ""

    def summary(self) -> str:
        state = "passed" if self.passed else f"failed ({self.failing_count} failing)"
        return f"{self.name} {state}" + (f": {self.detail}" if self.detail else "")


def _rows_where(df: DataFrame, condition: Column, name: str, blocking: bool, what: str) -> CheckOutcome:
    failing = df.where(condition)
    count = failing.count()
    samples = [row.asDict() for row in failing.limit(SAMPLE_ROWS).collect()] if count else []
    return CheckOutcome(name, count == 0, blocking, count, samples, f"{count} {what}" if count else "")


@dataclass(frozen=True)
class NotNull:
    """No row has a null in any of `columns`."""

    columns: tuple[str, ...]
    blocking: bool = False

    @property
    def name(self) -> str:
        return "not_null_" + "_".join(self.columns)

    def evaluate(self, df: DataFrame) -> CheckOutcome:
        condition = F.lit(False)
        for column in self.columns:
            condition = condition | F.col(column).isNull()
        return _rows_where(df, condition, self.name, self.blocking, f"rows with a null in {list(self.columns)}")


@dataclass(frozen=True)
class Unique:
    """No two rows share the same values of `columns`."""

    columns: tuple[str, ...]
    blocking: bool = False

    @property
    def name(self) -> str:
        return "unique_" + "_".join(self.columns)

    def evaluate(self, df: DataFrame) -> CheckOutcome:
        duplicated = df.groupBy(*self.columns).count().where(F.col("count") > 1)
        count = duplicated.count()
        samples = [r.asDict() for r in duplicated.limit(SAMPLE_ROWS).collect()] if count else []
        detail = f"{count} values of {list(self.columns)} appear more than once" if count else ""
        return CheckOutcome(self.name, count == 0, self.blocking, count, samples, detail)


@dataclass(frozen=True)
class MinRows:
    """The table has at least `count` rows."""

    count: int
    blocking: bool = False

    @property
    def name(self) -> str:
        return "min_rows"

    def evaluate(self, df: DataFrame) -> CheckOutcome:
        rows = df.count()
        passed = rows >= self.count
        detail = "" if passed else f"{rows} rows, expected at least {self.count}"
        return CheckOutcome(self.name, passed, self.blocking, 0 if passed else 1, [], detail)


@dataclass(frozen=True)
class AcceptedValues:
    """Every non-null value of `column` is one of `values`."""

    column: str
    values: frozenset
    blocking: bool = False

    @property
    def name(self) -> str:
        return f"accepted_values_{self.column}"

    def evaluate(self, df: DataFrame) -> CheckOutcome:
        condition = F.col(self.column).isNotNull() & ~F.col(self.column).isin(sorted(self.values))
        return _rows_where(df, condition, self.name, self.blocking,
                           f"rows with {self.column} outside {sorted(self.values)}")


@dataclass(frozen=True)
class SchemaContract:
    """The table has exactly these columns, with these Spark SQL types."""

    columns: Mapping[str, str]
    blocking: bool = True

    @property
    def name(self) -> str:
        return "schema_contract"

    def evaluate(self, df: DataFrame) -> CheckOutcome:
        problems = schema_differences(dict(df.dtypes), dict(self.columns))
        return CheckOutcome(self.name, not problems, self.blocking, len(problems),
                            [{"problem": p} for p in problems[:SAMPLE_ROWS]], "; ".join(problems))


def schema_differences(actual: Mapping[str, str], expected: Mapping[str, str]) -> list[str]:
    """What differs between two {column: type} maps, one line per column."""
    problems = [f"column {c} is missing (expected {t})" for c, t in expected.items() if c not in actual]
    problems += [f"column {c} is {actual[c]}, expected {t}"
                 for c, t in expected.items() if c in actual and actual[c] != t]
    problems += [f"column {c} ({actual[c]}) is not in the contract" for c in actual if c not in expected]
    return problems


Check = NotNull | Unique | MinRows | AcceptedValues | SchemaContract
