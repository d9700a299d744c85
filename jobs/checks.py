"""Data checks declared with a table, evaluated by its job on the version it just wrote.

Each check is a small declaration that says, as a Spark aggregate, how many rows fail it.
`evaluate_checks` computes every check of a table, and its row count, in one aggregation over
what the job wrote, and reads sample rows only for the checks that failed. The job reports the
outcomes to Dagster as asset checks; a blocking check that fails undoes the write.

A table that only appends (IngestNewFiles) is checked on the rows it appended, as Databricks
checks a streaming table's expectations on each batch: the earlier rows passed when they were
written. Unique also looks up the appended keys in the whole table (or, bounded by a day, in
the rows of the appended days), and MinRows counts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from jobs.spark import DataFrame, F

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

    def failing_count(self):
        # A struct is never null, so rows with nulls in the key are counted as values too.
        return F.count(F.lit(1)) - F.count_distinct(F.struct(*self.columns))

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

    def failing_count(self):
        return None  # the table's row count decides, in outcome

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

    def failing_count(self):
        return None  # a property of the schema, not of rows

    def outcome(self, df: DataFrame, failing: int, rows: int) -> CheckOutcome:
        problems = schema_differences(dict(df.dtypes), dict(self.columns))
        return CheckOutcome(self.name, not problems, self.blocking, len(problems),
                            [{"problem": p} for p in problems[:SAMPLE_ROWS]], "; ".join(problems))


Check = NotNull | Unique | MinRows | AcceptedValues | SchemaContract


def evaluate_checks(df: DataFrame, checks: tuple[Check, ...],
                    table: DataFrame | None = None) -> tuple[int, list[CheckOutcome]]:
    """The table's row count and the outcome of each check, in one aggregation over `df` (plus
    a sample query for each check that failed).

    With `table`, `df` holds the rows just appended to `table` (which holds them too), whose
    earlier rows passed the checks when they were written: only `df` is checked, except that
    Unique looks up the appended keys in all of `table` (a broadcast join on the key columns
    alone) and MinRows counts `table`. `table` is the version the append wrote, not the one
    before it: Delta counts it from its files' statistics, and keeps its snapshot for the next reads.
    """
    counts = {f"check_{i}": check.failing_count() for i, check in enumerate(checks)}
    aggregates = [F.count(F.lit(1)).alias("rows")] + [
        expression.alias(alias) for alias, expression in counts.items() if expression is not None
    ]
    if table is not None:  # the days of the appended rows, for a Unique bounded by day
        aggregates += [F.collect_set(check.day).alias(f"days_{i}") for i, check in enumerate(checks)
                       if isinstance(check, Unique) and check.day is not None]
    totals = df.agg(*aggregates).first()
    rows = totals["rows"] if table is None else table.count()
    outcomes = []
    for i, check in enumerate(checks):
        failing = totals[f"check_{i}"] if counts[f"check_{i}"] is not None else 0
        checked = df
        if table is not None and isinstance(check, Unique):
            keys = F.broadcast(df.select(*check.columns).distinct().alias("appended"))
            # Null-safe, as the count above counts a null key as a value.
            same_key = [F.col(f"table.`{c}`").eqNullSafe(F.col(f"appended.`{c}`")) for c in check.columns]
            earlier = table
            if check.day is not None:
                # Literal days, so that Delta skips the files of other days by their statistics.
                earlier = table.where(F.col(check.day).isin(sorted(totals[f"days_{i}"])) | F.col(check.day).isNull())
            checked = earlier.alias("table").join(keys, same_key, "left_semi")  # read again for samples if it failed
            # Every row holding an appended key, beyond one per key.
            failing = checked.count() - (totals["rows"] - failing)
        outcome = check.outcome(checked, failing, rows)
        if table is not None and not isinstance(check, (MinRows, SchemaContract)):
            outcome = replace(outcome, checked="the rows appended" + (
                "" if not isinstance(check, Unique) else " and the earlier rows sharing their key"
                + (f" on their {check.day}" if check.day else "")))
        outcomes.append(outcome)
    return rows, outcomes


def schema_differences(actual: Mapping[str, str], expected: Mapping[str, str]) -> list[str]:
    """What differs between two {column: type} maps, one line per column."""
    problems = [f"column {c} is missing (expected {t})" for c, t in expected.items() if c not in actual]
    problems += [f"column {c} is {actual[c]}, expected {t}"
                 for c, t in expected.items() if c in actual and actual[c] != t]
    problems += [f"column {c} ({actual[c]}) is not in the contract" for c in actual if c not in expected]
    return problems


def _sample(df: DataFrame) -> list[dict]:
    return [row.asDict() for row in df.limit(SAMPLE_ROWS).collect()]
