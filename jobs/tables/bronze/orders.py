from jobs.spark import DataFrame

from jobs.columns import SOURCE_COLUMNS, select_typed
from jobs.checks import AcceptedValues, MinRows, NotNull, SchemaContract, Unique
from jobs.table import LandingFiles, IngestNewFiles, Quarantine, Table, WhenAnyInputUpdates

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
    return select_typed(orders, COLUMNS, keys=("o_orderkey",))


TABLE = Table(
    name="bronze.orders",
    inputs={"orders": LandingFiles("orders")},
    transform=transform,
    # Each landing file once: new files are appended, with the file each row came from.
    write=IngestNewFiles(),
    trigger=WhenAnyInputUpdates(),
    # Orders with no key or an unreadable value are set aside, the rest loaded.
    bad_rows=Quarantine("bronze.orders_rejected"),
    # Files hold runs of order dates: a day of orders is a day's read, however long the history.
    clustered_by_day="o_orderdate",
    checks=(
        NotNull(("o_orderkey", "o_custkey", "o_orderdate"), blocking=True),
        # An order keeps its date: new keys are looked for among the orders of their dates.
        Unique(("o_orderkey",), blocking=True, day="o_orderdate"),
        MinRows(1, blocking=True),
        AcceptedValues("o_orderstatus", frozenset({"O", "F", "P"})),
        SchemaContract({**COLUMNS, **SOURCE_COLUMNS}),
    ),
    description="TPC-H orders as landed, with typed columns.",
)
