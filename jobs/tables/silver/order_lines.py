from jobs.spark import DataFrame, F

from jobs.checks import NotNull, Unique
from jobs.table import DailyPartitions, Overwrite, Table, WhenAnyInputUpdates

# TPC-H order dates run from 1992-01-01 to 1998-08-02.
ORDER_DAYS = DailyPartitions(column="order_date", start="1992-01-01", end="1998-08-03")


def transform(orders: DataFrame, lineitem: DataFrame, customers: DataFrame) -> DataFrame:
    net_revenue = F.col("l_extendedprice") * (F.lit(1) - F.col("l_discount"))
    return (
        lineitem.join(orders, lineitem.l_orderkey == orders.o_orderkey, "inner")
        .join(customers, orders.o_custkey == customers.c_custkey, "left")
        .select(
            F.col("l_orderkey").alias("order_key"),
            F.col("l_linenumber").alias("line_number"),
            F.col("o_orderdate").alias("order_date"),
            F.col("o_custkey").alias("customer_key"),
            F.col("c_nation").alias("nation"),
            net_revenue.cast("decimal(18,4)").alias("net_revenue"),
        )
    )


TABLE = Table(
    name="silver.order_lines",
    inputs={
        "orders": "bronze.orders",
        "lineitem": "bronze.lineitem",
        "customers": "bronze.customers",
    },
    transform=transform,
    write=Overwrite(),
    # Any new orders, line items or customers change the order lines.
    trigger=WhenAnyInputUpdates(),
    partitions=ORDER_DAYS,
    # New orders and line items rebuild only their order dates, and a day reads only its orders
    # and line items (and line items whose order had not landed); new customers rebuild every day.
    days_touched={"orders": "o_orderdate", "lineitem": "l_orderdate"},
    checks=(
        Unique(("order_key", "line_number"), blocking=True),
        NotNull(("order_date", "net_revenue"), blocking=True),
        NotNull(("nation",)),  # a customer without a nation: reported, not blocking
    ),
    description="One row per line item with its order date, customer, nation and net revenue.",
)
