"""Data checks declared with a table, evaluated by its job on the version it just wrote.

Each check is a small declaration that says, as a Spark aggregate, how many rows fail it. The
job takes those aggregates and the row count while it writes (`check_metrics`, observed on the
written DataFrame), so `evaluate_checks` reads the written rows again only for what one pass
cannot count (Unique's distinct keys) and for samples of the checks that failed. The job
reports the outcomes to Dagster as asset checks; a blocking check that fails undoes the write.

A table that only appends (IngestNewFiles) is checked on the rows it appended, as Databricks
checks a streaming table's expectations on each batch: the earlier rows passed when they were
written. Unique also looks up the appended keys in the whole table (or, bounded by a day, in
the rows of the appended days), and MinRows counts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from jobs.spark import Column, DataFrame, F

SAMPLE_ROWS = 5


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    blocking: bool
    failing_count: int
    samples: list[dict] = field(default_factory=list)
    detail: str = ""
    checked: str = "every row"  # which rows the check read

    def summary(self) -> str:
        state = "passed" if self.passed else f"failed ({self.failing_count} failing)"
        return f"{self.name} {state}" + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class NotNull:
    """No row has a null in any of `columns`."""

    columns: tuple[str, ...]
    blocking: bool = False

    @property
    def name(self) -> str:
        return "not_null_" + "_".join(self.columns)

    def _failing(self):
        condition = F.lit(False)
        for column in self.columns:
            condition = condition | F.col(column).isNull()
        return condition

    def failing_count(self):
        return F.count_if(self._failing())

    def outcome(self, df: DataFrame, failing: int, rows: int) -> CheckOutcome:
        samples = _sample(df.where(self._failing())) if failing else []
        detail = f"{failing} rows with a null in {list(self.columns)}" if failing else ""
        return CheckOutcome(self.name, not failing, self.blocking, failing, samples, detail)


@dataclass(frozen=True)
class Unique:
    """No two rows share the same values of `columns`. A failure counts the rows beyond the
    first of each repeated value; its samples are the repeated values with their counts.

    `day` names a date column that the key determines (rows sharing a key share their day, or
    have none). Rows appended to a table then have their keys looked up only among the rows of
    their days and those without a date: a day's read when the table is clustered by that
    column, however long its history. A key repeated with another day is not caught.
    """

    columns: tuple[str, ...]
    blocking: bool = False
    day: str | None = None

    @property
    def name(self) -> str:
        return "unique_" + "_".join(self.columns)

    def outcome(self, df: DataFrame, failing: int, rows: int) -> CheckOutcome:
        repeated = df.groupBy(*self.columns).count().where(F.col("count") > 1)
        samples = _sample(repeated) if failing else []
        detail = f"{failing} rows repeat a value of {list(self.columns)}" if failing else ""
        return CheckOutcome(self.name, not failing, self.blocking, failing, samples, detail)


@dataclass(frozen=True)
class MinRows:
    """The table has at least `count` rows."""

    count: int
    blocking: bool = False

    @property
    def name(self) -> str:
        return "min_rows"

    def outcome(self, df: DataFrame, failing: int, rows: int) -> CheckOutcome:
        failing = int(rows < self.count)
        detail = f"{rows} rows, fewer than {self.count}" if failing else ""
        return CheckOutcome(self.name, not failing, self.blocking, failing, [], detail)


@dataclass(frozen=True)
class AcceptedValues:
    """Every non-null value of `column` is one of `values`."""

    column: str
    values: frozenset
    blocking: bool = False

    @property
    def name(self) -> str:
        return f"accepted_values_{self.column}"

    def _failing(self):
        return F.col(self.column).isNotNull() & ~F.col(self.column).isin(sorted(self.values))

    def failing_count(self):
        return F.count_if(self._failing())

    def outcome(self, df: DataFrame, failing: int, rows: int) -> CheckOutcome:
        samples = _sample(df.where(self._failing())) if failing else []
        detail = f"{failing} rows with {self.column} outside {sorted(self.values)}" if failing else ""
        return CheckOutcome(self.name, not failing, self.blocking, failing, samples, detail)


@dataclass(frozen=True)
class SchemaContract:
    """The table has exactly these columns, with these Spark SQL types."""

    columns: Mapping[str, str]
    blocking: bool = True

    @property
    def name(self) -> str:
        return "schema_contract"

    def outcome(self, df: DataFrame, failing: int, rows: int) -> CheckOutcome:
        problems = schema_differences(dict(df.dtypes), dict(self.columns))
        return CheckOutcome(self.name, not problems, self.blocking, len(problems),
                            [{"problem": p} for p in problems[:SAMPLE_ROWS]], "; ".join(problems))


Check = NotNull | Unique | MinRows | AcceptedValues | SchemaContract


def check_metrics(checks: tuple[Check, ...], appended_dates: tuple[str, ...] | None = None) -> dict[str, Column]:
    """The aggregates over the rows to check that one pass can take as they are written (Spark's
    DataFrame.observe, which refuses distinct counts): the row count and the failing count of
    each check that counts rows alone. With `appended_dates` (the rows are appended to a table),
    also the set of values of each of those columns and of each Unique's day, which only an
    append's checks and touched days read. `evaluate_checks` takes their values as `observed`."""
    metrics = {"rows": F.count(F.lit(1))}
    for i, check in enumerate(checks):
        if isinstance(check, NotNull | AcceptedValues):
            metrics[f"check_{i}"] = check.failing_count()
    if appended_dates is not None:
        days = [check.day for check in checks if isinstance(check, Unique) and check.day is not None]
        for column in sorted({*appended_dates, *days}):
            metrics[dates_metric(column)] = F.collect_set(column)
    return metrics


def dates_metric(column: str) -> str:
    """The name of the set of `column`'s values among check_metrics."""
    return f"dates_{column}"


def evaluate_checks(df: DataFrame, checks: tuple[Check, ...], table: DataFrame | None = None,
                    observed: Mapping[str, Any] | None = None) -> tuple[int, list[CheckOutcome]]:
    """The table's row count and the outcome of each check of the rows `df`.

    `observed` holds check_metrics' values, taken while `df` was written; without it they are
    one aggregation over `df`, which also counts Unique's repeats. Otherwise each Unique is one
    more aggregation. Each check that failed costs a sample query.

    With `table`, `df` holds the rows just appended to `table` (which holds them too), whose
    earlier rows passed the checks when they were written: only `df` is checked, except that
    Unique looks up the appended keys in all of `table` (a broadcast join on the key columns
    alone), counting them and their repeats in one aggregation, and MinRows counts `table`.
    `table` is the version the append wrote, not the one before it: Delta counts it from its
    files' statistics, and keeps its snapshot for the next reads.
    """
    if observed is None:
        metrics = check_metrics(checks, () if table is not None else None)
        if table is None:  # Unique's repeats in the same pass
            metrics |= {f"check_{i}": _repeats(check) for i, check in enumerate(checks) if isinstance(check, Unique)}
        observed = df.agg(*[metric.alias(name) for name, metric in metrics.items()]).first().asDict()
    rows = observed["rows"] if table is None else table.count()
    outcomes = []
    for i, check in enumerate(checks):
        failing, checked = observed.get(f"check_{i}", 0), df
        if isinstance(check, Unique):
            if table is not None:
                checked = _sharing_a_key(check, df, table, observed)
            if table is not None or f"check_{i}" not in observed:
                failing = checked.agg(_repeats(check)).first()[0]
        outcome = check.outcome(checked, failing, rows)
        if table is not None and not isinstance(check, (MinRows, SchemaContract)):
            outcome = replace(outcome, checked="the rows appended" + (
                "" if not isinstance(check, Unique) else " and the earlier rows sharing their key"
                + (f" on their {check.day}" if check.day else "")))
        outcomes.append(outcome)
    return rows, outcomes


def _repeats(check: Unique) -> Column:
    """The rows beyond the first of each value of the key. A struct is never null, so rows with
    nulls in the key count as values too."""
    return F.count(F.lit(1)) - F.count_distinct(F.struct(*check.columns))


def _sharing_a_key(check: Unique, appended: DataFrame, table: DataFrame, observed: Mapping[str, Any]) -> DataFrame:
    """The rows of `table` (which holds `appended`) that share a key with a row of `appended`:
    their repeats are the appended keys' repeats, in `table` and among themselves."""
    keys = F.broadcast(appended.select(*check.columns).distinct().alias("appended"))
    # Null-safe, as _repeats counts a null key as a value.
    same_key = [F.col(f"table.`{c}`").eqNullSafe(F.col(f"appended.`{c}`")) for c in check.columns]
    earlier = table
    if check.day is not None:
        # Literal days, so that Delta skips the files of other days by their statistics.
        days = sorted(observed[dates_metric(check.day)])
        earlier = table.where(F.col(check.day).isin(days) | F.col(check.day).isNull())
    return earlier.alias("table").join(keys, same_key, "left_semi")


def schema_differences(actual: Mapping[str, str], expected: Mapping[str, str]) -> list[str]:
    """What differs between two {column: type} maps, one line per column."""
    problems = [f"column {c} is missing (expected {t})" for c, t in expected.items() if c not in actual]
    problems += [f"column {c} is {actual[c]}, expected {t}"
                 for c, t in expected.items() if c in actual and actual[c] != t]
    problems += [f"column {c} ({actual[c]}) is not in the contract" for c in actual if c not in expected]
    return problems


def _sample(df: DataFrame) -> list[dict]:
    return [row.asDict() for row in df.limit(SAMPLE_ROWS).collect()]
