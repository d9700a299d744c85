from pyspark.sql import DataFrame

from jobs.columns import select_typed
from jobs.table import LandingFiles, Overwrite, Table, WhenAnyInputUpdates

COLUMNS = {
    "o_orderkey": "bigint",
    "o_custkey": "bigint",
    "o_orderstatus": "string",
    "o_totalprice": "decimal(15,2)",
    "o_orderdate": "date",
    "o_orderpriority": "string",
    "o_clerk": "string",
    "o_shippriority": "int",
    "o_comment": "string",
}


def transform(orders: DataFrame) -> DataFrame:
    return select_typed(orders, COLUMNS)


TABLE = Table(
    name="bronze.orders",
    inputs={"orders": LandingFiles("orders")},
    transform=transform,
    write=Overwrite(),
    # A new file set in landing/orders rebuilds the table.
    trigger=WhenAnyInputUpdates(),
    description="TPC-H orders as landed, with typed columns.",
)
