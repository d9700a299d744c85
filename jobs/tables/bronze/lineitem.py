from jobs.spark import DataFrame

from jobs.columns import select_typed
from jobs.checks import AcceptedValues, NotNull, SchemaContract, Unique
from jobs.table import FailOnBadRows, LandingFiles, Overwrite, Table, WhenAnyInputUpdates

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


def transform(lineitem: DataFrame) -> DataFrame:
    return select_typed(lineitem, COLUMNS, keys=("l_orderkey", "l_linenumber"))


TABLE = Table(
    name="bronze.lineitem",
    inputs={"lineitem": LandingFiles("lineitem")},
    transform=transform,
    write=Overwrite(),
    # A new file set in landing/lineitem rebuilds the table.
    trigger=WhenAnyInputUpdates(),
    # A line item that cannot be read fails the load: partial orders would skew revenue.
    bad_rows=FailOnBadRows(),
    checks=(
        NotNull(("l_orderkey", "l_linenumber", "l_shipdate"), blocking=True),
        Unique(("l_orderkey", "l_linenumber"), blocking=True),
        AcceptedValues("l_returnflag", frozenset({"A", "N", "R"})),
        SchemaContract(COLUMNS),
    ),
    description="TPC-H line items as landed, with typed columns.",
)
