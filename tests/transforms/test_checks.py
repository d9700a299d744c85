"""Declared checks on small DataFrames: what passes, what fails, and what a failure reports."""

from pyspark.sql import Observation

from jobs.checks import AcceptedValues, MinRows, NotNull, SchemaContract, Unique, check_metrics, evaluate_checks


def orders(spark, rows):
    return spark.createDataFrame(rows, "o_orderkey bigint, o_orderstatus string")


def test_not_null_counts_and_samples_the_rows_with_a_null(spark):
    rows, [outcome] = evaluate_checks(orders(spark, [(1, "O"), (None, "F")]), (NotNull(("o_orderkey",), blocking=True),))

    assert rows == 2
    assert (outcome.name, outcome.passed, outcome.blocking) == ("not_null_o_orderkey", False, True)
    assert outcome.failing_count == 1
    assert outcome.samples == [{"o_orderkey": None, "o_orderstatus": "F"}]


def test_unique_counts_the_repeats_and_samples_the_repeated_values(spark):
    _, [outcome] = evaluate_checks(orders(spark, [(1, "O"), (1, "F"), (1, "P"), (2, "O")]), (Unique(("o_orderkey",)),))

    assert not outcome.passed and outcome.failing_count == 2
    assert outcome.samples == [{"o_orderkey": 1, "count": 3}]


def test_every_check_of_a_table_in_one_evaluation(spark):
    df = orders(spark, [(1, "O"), (2, "X")])
    checks = (MinRows(2), MinRows(3), AcceptedValues("o_orderstatus", frozenset({"O", "F", "P"})), Unique(("o_orderkey",)))

    rows, outcomes = evaluate_checks(df, checks)

    assert rows == 2
    assert [o.passed for o in outcomes] == [True, False, False, True]
    assert outcomes[2].failing_count == 1 and "outside ['F', 'O', 'P']" in outcomes[2].detail


def test_schema_contract_names_missing_changed_and_extra_columns(spark):
    contract = SchemaContract({"o_orderkey": "bigint", "o_orderdate": "date"})
    df = spark.createDataFrame([("1", "O")], "o_orderkey string, o_orderstatus string")

    _, [outcome] = evaluate_checks(df, (contract,))

    assert not outcome.passed and outcome.blocking
    assert outcome.detail == (
        "column o_orderdate is missing (expected date); column o_orderkey is string, expected bigint; "
        "column o_orderstatus (string) is not in the contract"
    )


def test_appended_rows_are_checked_against_the_earlier_rows_keys_not_their_values(spark):
    earlier = orders(spark, [(1, "X"), (2, "O"), (3, "O")])  # passed when written; "X" was a warning then
    appended = orders(spark, [(3, "F"), (4, "O"), (4, "P"), (5, None), (None, "O")])
    table = earlier.unionByName(appended)  # the version the append wrote
    checks = (Unique(("o_orderkey",)), AcceptedValues("o_orderstatus", frozenset({"O", "F", "P"})), MinRows(7),
              NotNull(("o_orderstatus",)))

    rows, (unique, accepted, min_rows, not_null) = evaluate_checks(appended, checks, table)

    assert rows == 8
    assert unique.failing_count == 2  # 3 repeats an earlier key, 4 repeats itself; one null key repeats nothing
    assert sorted(s["o_orderkey"] for s in unique.samples) == [3, 4]
    assert unique.checked == "the rows appended and the earlier rows sharing their key"
    assert accepted.passed and accepted.checked == "the rows appended"  # the earlier "X" is not counted again
    assert min_rows.passed and min_rows.checked == "every row"
    assert not_null.failing_count == 1 and not_null.samples == [{"o_orderkey": 5, "o_orderstatus": None}]


def test_checks_take_the_counts_observed_while_writing_and_count_uniques_after(spark):
    df = orders(spark, [(1, None), (1, "O"), (2, "F")])
    checks = (NotNull(("o_orderstatus",)), Unique(("o_orderkey",)), MinRows(4))
    observation = Observation("the write")
    df.observe(observation, *[metric.alias(name) for name, metric in check_metrics(checks).items()]).collect()

    rows, (not_null, unique, min_rows) = evaluate_checks(df, checks, observed=observation.get)

    assert rows == 3
    assert not_null.failing_count == 1 and not_null.samples == [{"o_orderkey": 1, "o_orderstatus": None}]
    assert unique.failing_count == 1 and unique.samples == [{"o_orderkey": 1, "count": 2}]
    assert not min_rows.passed
