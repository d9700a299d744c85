"""Silver order_lines: one row per line item with its order, customer, nation and net revenue."""

import datetime as dt
from decimal import Decimal

from jobs.tables.silver import order_lines

ORDERS = "o_orderkey bigint, o_custkey bigint, o_orderdate date"
LINEITEM = "l_orderkey bigint, l_linenumber int, l_extendedprice decimal(15,2), l_discount decimal(15,2)"
CUSTOMERS = "c_custkey bigint, c_nation string"


def test_each_line_item_gets_order_date_nation_and_net_revenue(spark):
    orders = spark.createDataFrame(
        [(10, 1, dt.date(1995, 3, 1)), (11, 2, dt.date(1995, 3, 2))], ORDERS
    )
    lineitem = spark.createDataFrame(
        [
            (10, 1, Decimal("100.00"), Decimal("0.10")),
            (10, 2, Decimal("33.33"), Decimal("0.00")),
            (11, 1, Decimal("19.99"), Decimal("0.05")),
            (99, 1, Decimal("5.00"), Decimal("0.00")),  # its order is missing: dropped
        ],
        LINEITEM,
    )
    customers = spark.createDataFrame([(1, "FRANCE")], CUSTOMERS)  # customer 2 unknown

    result = order_lines.transform(orders=orders, lineitem=lineitem, customers=customers)

    assert result.columns == [
        "order_key", "line_number", "order_date", "customer_key", "nation", "net_revenue"
    ]
    assert sorted(tuple(r) for r in result.collect()) == [
        (10, 1, dt.date(1995, 3, 1), 1, "FRANCE", Decimal("90.0000")),
        (10, 2, dt.date(1995, 3, 1), 1, "FRANCE", Decimal("33.3300")),
        (11, 1, dt.date(1995, 3, 2), 2, None, Decimal("18.9905")),
    ]
