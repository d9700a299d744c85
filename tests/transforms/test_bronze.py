"""Bronze transforms: landed rows typed, customers given their nation's name."""

import datetime as dt
from decimal import Decimal

import pytest

from jobs.table import REJECT_COLUMN
from jobs.tables.bronze import customers, lineitem, orders


def test_orders_are_typed_as_declared(spark):
    landed = spark.createDataFrame(
        [(1, 7, "O", "173665.47", "1996-01-02", "5-LOW", "Clerk#1", 0, "note", "extra")],
        "o_orderkey int, o_custkey int, o_orderstatus string, o_totalprice string, "
        "o_orderdate string, o_orderpriority string, o_clerk string, o_shippriority int, "
        "o_comment string, unexpected string",
    )

    typed = orders.transform(landed)

    assert dict(typed.dtypes) == {
        "o_orderkey": "bigint", "o_custkey": "bigint", "o_orderstatus": "string",
        "o_totalprice": "decimal(15,2)", "o_orderdate": "date", "o_orderpriority": "string",
        "o_clerk": "string", "o_shippriority": "int", "o_comment": "string",
        REJECT_COLUMN: "string",  # null on this good row
    }
    row = typed.first()
    assert (row.o_totalprice, row.o_orderdate) == (Decimal("173665.47"), dt.date(1996, 1, 2))


def test_line_items_carry_their_orders_date_or_none_before_the_order_lands(spark):
    columns = ", ".join(f"{name} {'bigint' if name in ('l_orderkey', 'l_linenumber') else 'string'}"
                        for name in lineitem.COLUMNS)
    landed = spark.createDataFrame([tuple([key, 0, 0, 1] + ["1"] * 12 + [10**15]) for key in (1, 2, 3)],
                                   columns + ", _source_modified_us bigint")
    # Order 1 landed with its line items, order 3 years before them, order 2 not yet.
    landed_orders = spark.createDataFrame([(1, dt.date(1996, 1, 2), 10**15), (3, dt.date(1993, 5, 1), 10**12)],
                                          "o_orderkey bigint, o_orderdate date, _source_modified_us bigint")

    result = lineitem.transform(landed, landed_orders)

    assert {(r.l_orderkey, r.l_orderdate) for r in result.collect()} == {
        (1, dt.date(1996, 1, 2)), (2, None), (3, dt.date(1993, 5, 1))}
    assert result.columns.index("l_orderdate") == len(lineitem.COLUMNS)


def test_a_missing_landed_column_is_named(spark):
    landed = spark.createDataFrame([(1,)], "o_orderkey bigint")

    with pytest.raises(ValueError, match=r"missing column\(s\) \['o_custkey'"):
        orders.transform(landed)


def test_customers_carry_their_nation_name(spark):
    customer = spark.createDataFrame(
        [
            (1, "Ann", "1 Road", 3, "555", Decimal("10.00"), "BUILDING", "c"),
            (2, "Bob", "2 Road", 99, "556", Decimal("-5.00"), "MACHINERY", "c"),
        ],
        "c_custkey bigint, c_name string, c_address string, c_nationkey bigint, "
        "c_phone string, c_acctbal decimal(15,2), c_mktsegment string, c_comment string",
    )
    nation = spark.createDataFrame(
        [(3, "CANADA", 1, "n")], "n_nationkey bigint, n_name string, n_regionkey bigint, n_comment string"
    )

    result = customers.transform(customer, nation)

    assert {(r.c_custkey, r.c_nation) for r in result.collect()} == {(1, "CANADA"), (2, None)}
