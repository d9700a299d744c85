from jobs.spark import DataFrame, F

from jobs.checks import NotNull, Unique
from jobs.table import Overwrite, Table, WhenAnyInputUpdates
from jobs.tables.silver.order_lines import ORDER_DAYS


def transform(order_lines: DataFrame) -> DataFrame:
    return (
        order_lines.groupBy("order_date", "nation")
        .agg(
            F.sum("net_revenue").cast("decimal(18,2)").alias("revenue"),
            F.countDistinct("order_key").alias("order_count"),
            F.count(F.lit(1)).alias("line_count"),
        )
        .select("order_date", "nation", "revenue", "order_count", "line_count")
    )


TABLE = Table(
    name="gold.daily_nation_revenue",
    inputs={"order_lines": "silver.order_lines"},
    transform=transform,
    write=Overwrite(),
    trigger=WhenAnyInputUpdates(),
    partitions=ORDER_DAYS,
    checks=(Unique(("order_date", "nation"), blocking=True), NotNull(("revenue",), blocking=True)),
    description="Revenue, distinct orders and line items per order date and nation.",
)
