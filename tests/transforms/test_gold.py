"""Gold daily_nation_revenue: revenue, distinct orders and lines per date and nation."""

import datetime as dt
from decimal import Decimal

from jobs.tables.gold import daily_nation_revenue

ORDER_LINES = (
    "order_key bigint, line_number int, order_date date, customer_key bigint, "
    "nation string, net_revenue decimal(18,4)"
)


def test_one_row_per_date_and_nation_with_exact_types(spark):
    day = dt.date(1995, 3, 1)
    order_lines = spark.createDataFrame(
        [
            (10, 1, day, 1, "FRANCE", Decimal("90.0050")),
            (10, 2, day, 1, "FRANCE", Decimal("33.3300")),
            (12, 1, day, 3, "FRANCE", Decimal("1.0000")),
            (11, 1, day, 2, "PERU", Decimal("18.9905")),
        ],
        ORDER_LINES,
    )

    result = daily_nation_revenue.transform(order_lines)

    assert result.dtypes == [
        ("order_date", "date"), ("nation", "string"), ("revenue", "decimal(18,2)"),
        ("order_count", "bigint"), ("line_count", "bigint"),
    ]
    assert sorted(tuple(r) for r in result.collect()) == [
        (day, "FRANCE", Decimal("124.34"), 2, 3),  # 124.3350 rounds half up
        (day, "PERU", Decimal("18.99"), 1, 1),
    ]
