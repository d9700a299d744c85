from jobs.spark import DataFrame, F

from jobs.columns import SOURCE_COLUMNS, select_typed
from jobs.checks import AcceptedValues, NotNull, SchemaContract, Unique
from jobs.table import FailOnBadRows, LandingFiles, IngestNewFiles, Table, WhenAnyInputUpdates

COLUMNS = {
    "l_orderkey": "bigint",
    "l_partkey": "bigint",
    "l_suppkey": "bigint",
    "l_linenumber": "int",
    "l_quantity": "decimal(15,2)",
    "l_extendedprice": "decimal(15,2)",
    "l_discount": "decimal(15,2)",
    "l_tax": "decimal(15,2)",
    "l_returnflag": "string",
    "l_linestatus": "string",
    "l_shipdate": "date",
    "l_commitdate": "date",
    "l_receiptdate": "date",
    "l_shipinstruct": "string",
    "l_shipmode": "string",
    "l_comment": "string",
}
# The date of the line item's order, looked up in bronze.orders: the day silver builds it into.
ORDER_DATE = "l_orderdate"
# Orders land with their line items: those landed from a minute before the line items' files.
LANDED_WITH_US = 60_000_000


def transform(lineitem: DataFrame, orders: DataFrame) -> DataFrame:
    """The line items, typed, with their order's date (null while the order has not landed)."""
    order_key = F.col("l_orderkey").cast("bigint")
    # Joined before typing: a join above select_typed's expressions makes Spark's constraint
    # propagation exhaust the heap (measured: out of memory on a few thousand rows).
    dates = order_dates(lineitem.select(order_key.alias("o_orderkey"), "_source_modified_us"), orders)
    dated = lineitem.join(dates, order_key == dates.o_orderkey, "left").drop("o_orderkey")
    return select_typed(dated, {**COLUMNS, ORDER_DATE: "date"}, keys=("l_orderkey", "l_linenumber"))


def order_dates(keys: DataFrame, orders: DataFrame) -> DataFrame:
    """`o_orderkey` and ORDER_DATE of the orders of `keys` (`o_orderkey`, `_source_modified_us`
    of the line items' landing files).

    Orders land with their line items: they are looked for first among the orders landed from a
    minute before the line items' files (by `_source_modified_us`, which Delta's file statistics
    turn into a read of those landings alone), and only the keys not found there among all
    orders. When all are found, Spark's adaptive execution drops that second read (its join has
    nothing to look up).
    """
    # A literal bound, so that Delta skips the files of older landings by their statistics.
    landed_from = keys.agg(F.min("_source_modified_us")).first()[0]
    wanted = keys.select("o_orderkey").distinct()
    recent = orders if landed_from is None else orders.where(F.col("_source_modified_us") >= landed_from - LANDED_WITH_US)
    found = recent.join(wanted, "o_orderkey", "left_semi")
    older = orders.join(wanted.join(found, "o_orderkey", "left_anti"), "o_orderkey", "left_semi")
    return found.unionByName(older).select("o_orderkey", F.col("o_orderdate").alias(ORDER_DATE))


TABLE = Table(
    name="bronze.lineitem",
    inputs={"lineitem": LandingFiles("lineitem"), "orders": "bronze.orders"},
    transform=transform,
    # Each landing file once: new files are appended, with the file each row came from.
    write=IngestNewFiles(),
    trigger=WhenAnyInputUpdates(),
    # A line item that cannot be read fails the load: partial orders would skew revenue.
    bad_rows=FailOnBadRows(),
    # Files hold runs of order dates: silver's day reads a day of line items.
    clustered_by_day=ORDER_DATE,
    checks=(
        NotNull(("l_orderkey", "l_linenumber", "l_shipdate"), blocking=True),
        # A line item's key names its order, hence its date.
        Unique(("l_orderkey", "l_linenumber"), blocking=True, day=ORDER_DATE),
        AcceptedValues("l_returnflag", frozenset({"A", "N", "R"})),
        SchemaContract({**COLUMNS, ORDER_DATE: "date", **SOURCE_COLUMNS}),
    ),
    description="TPC-H line items as landed, with typed columns and their order's date.",
)
