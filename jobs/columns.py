"""Column helpers shared by table transforms."""

from jobs.spark import DataFrame, F
from jobs.table import REJECT_COLUMN

# The columns that record, in each row an IngestNewFiles table ingested, the landing file it
# came from (jobs/landing_files.py adds them when it reads the files).
SOURCE_COLUMNS = {"_source_file": "string", "_source_size": "bigint", "_source_modified_us": "bigint"}


def select_typed(df: DataFrame, columns: dict[str, str], keys: tuple[str, ...] = ()) -> DataFrame:
    """Select exactly `columns`, each cast to its declared Spark SQL type, and mark bad rows.

    A row is bad when a `keys` column is null or a value does not parse as its type; its
    REJECT_COLUMN holds the reasons (null on good rows), and the table's `bad_rows` policy
    decides what happens to it. A missing column fails with its name. SOURCE_COLUMNS, when the
    input has them, pass through as they are.
    """
    missing = [name for name in columns if name not in df.columns]
    if missing:
        raise ValueError(f"missing column(s) {missing}; the input has {df.columns}")
    typed = {name: F.expr(f"try_cast(`{name}` AS {type_})") for name, type_ in columns.items()}
    reasons = [F.when(typed[key].isNull(), F.lit(f"{key} is null")) for key in keys]
    reasons += [
        F.when(F.col(name).isNotNull() & typed[name].isNull(),
               F.concat(F.lit(f"{name} '"), F.col(name).cast("string"), F.lit(f"' is not a {type_}")))
        for name, type_ in columns.items()
    ]
    reason = F.concat_ws("; ", *reasons)
    return df.select(
        *[value.alias(name) for name, value in typed.items()],
        *[name for name in SOURCE_COLUMNS if name in df.columns],
        F.when(reason != "", reason).alias(REJECT_COLUMN),
    )
