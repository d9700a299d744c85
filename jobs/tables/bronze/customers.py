from jobs.spark import DataFrame, F

from jobs.columns import select_typed
from jobs.checks import SchemaContract, Unique
from jobs.table import REJECT_COLUMN, LandingFiles, Merge, Table, WhenAnyInputUpdates

CUSTOMER_COLUMNS = {
    "c_custkey": "bigint",
    "c_name": "string",
    "c_address": "string",
    "c_nationkey": "bigint",
    "c_phone": "string",
    "c_acctbal": "decimal(15,2)",
    "c_mktsegment": "string",
}
NATION_COLUMNS = {"n_nationkey": "bigint", "n_name": "string"}


def transform(customer: DataFrame, nation: DataFrame) -> DataFrame:
    customers = select_typed(customer, CUSTOMER_COLUMNS, keys=("c_custkey",))
    nations = select_typed(nation, NATION_COLUMNS).drop(REJECT_COLUMN)  # a typed Delta table
    return (
        customers.join(nations, customers.c_nationkey == nations.n_nationkey, "left")
        .withColumn("c_nation", F.col("n_name"))
        .drop("n_nationkey", "n_name")
    )


TABLE = Table(
    name="bronze.customers",
    inputs={"customer": LandingFiles("customer"), "nation": "ingest.nation"},
    transform=transform,
    # Customers change in place upstream: upsert on the key keeps one row per customer.
    write=Merge(keys=("c_custkey",)),
    # New customer files or a new version of the nations both change customers.
    trigger=WhenAnyInputUpdates(),
    checks=(
        Unique(("c_custkey",), blocking=True),
        SchemaContract({**CUSTOMER_COLUMNS, "c_nation": "string"}),
    ),
    description="TPC-H customers with their nation's name.",
)
