"""Typing landed columns: bad rows are marked with the reason, not dropped or failed here."""

from jobs.columns import select_typed
from jobs.table import REJECT_COLUMN

COLUMNS = {"o_orderkey": "bigint", "o_orderdate": "date"}


def test_good_rows_are_typed_and_unmarked(spark):
    landed = spark.createDataFrame([("1", "1996-01-02")], "o_orderkey string, o_orderdate string")

    [row] = select_typed(landed, COLUMNS, keys=("o_orderkey",)).collect()

    assert (row.o_orderkey, str(row.o_orderdate), row[REJECT_COLUMN]) == (1, "1996-01-02", None)


def test_a_null_key_and_an_unparseable_value_are_the_reasons(spark):
    landed = spark.createDataFrame(
        [(None, "1996-01-02"), ("2", "yesterday"), ("x", None)], "o_orderkey string, o_orderdate string"
    )

    reasons = [row[REJECT_COLUMN] for row in select_typed(landed, COLUMNS, keys=("o_orderkey",)).collect()]

    assert reasons == [
        "o_orderkey is null",
        "o_orderdate 'yesterday' is not a date",
        "o_orderkey is null; o_orderkey 'x' is not a bigint",
    ]
