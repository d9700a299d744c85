"""Declared checks on small DataFrames: what passes, what fails, and what a failure reports."""

from jobs.checks import AcceptedValues, MinRows, NotNull, SchemaContract, Unique


def orders(spark, rows):
    return spark.createDataFrame(rows, "o_orderkey bigint, o_orderstatus string")


def test_not_null_counts_and_samples_the_rows_with_a_null(spark):
    outcome = NotNull(("o_orderkey",), blocking=True).evaluate(orders(spark, [(1, "O"), (None, "F")]))

    assert (outcome.name, outcome.passed, outcome.blocking) == ("not_null_o_orderkey", False, True)
    assert outcome.failing_count == 1
    assert outcome.samples == [{"o_orderkey": None, "o_orderstatus": "F"}]


def test_unique_reports_the_duplicated_keys(spark):
    outcome = Unique(("o_orderkey",)).evaluate(orders(spark, [(1, "O"), (1, "F"), (2, "O")]))

    assert not outcome.passed and outcome.failing_count == 1
    assert outcome.samples == [{"o_orderkey": 1, "count": 2}]


def test_min_rows_and_accepted_values(spark):
    df = orders(spark, [(1, "O"), (2, "X")])

    assert MinRows(2).evaluate(df).passed and not MinRows(3).evaluate(df).passed
    accepted = AcceptedValues("o_orderstatus", frozenset({"O", "F", "P"})).evaluate(df)
    assert (accepted.passed, accepted.failing_count) == (False, 1)
    assert "outside ['F', 'O', 'P']" in accepted.detail


def test_schema_contract_names_missing_changed_and_extra_columns(spark):
    contract = SchemaContract({"o_orderkey": "bigint", "o_orderdate": "date"})
    df = spark.createDataFrame([("1", "O")], "o_orderkey string, o_orderstatus string")

    outcome = contract.evaluate(df)

    assert not outcome.passed and outcome.blocking
    assert outcome.detail == (
        "column o_orderdate is missing (expected date); column o_orderkey is string, expected bigint; "
        "column o_orderstatus (string) is not in the contract"
    )
