from jobs.spark import DataFrame

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


def transform(lineitem: DataFrame) -> DataFrame:
    return select_typed(lineitem, COLUMNS, keys=("l_orderkey", "l_linenumber"))


TABLE = Table(
    name="bronze.lineitem",
    inputs={"lineitem": LandingFiles("lineitem")},
    transform=transform,
    # Each landing file once: new files are appended, with the file each row came from.
    write=IngestNewFiles(),
    trigger=WhenAnyInputUpdates(),
    # A line item that cannot be read fails the load: partial orders would skew revenue.
    bad_rows=FailOnBadRows(),
    checks=(
        NotNull(("l_orderkey", "l_linenumber", "l_shipdate"), blocking=True),
        Unique(("l_orderkey", "l_linenumber"), blocking=True),
        AcceptedValues("l_returnflag", frozenset({"A", "N", "R"})),
        SchemaContract({**COLUMNS, **SOURCE_COLUMNS}),
    ),
    description="TPC-H line items as landed, with typed columns.",
)
