"""Column helpers shared by table transforms."""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def select_typed(df: DataFrame, columns: dict[str, str]) -> DataFrame:
    """Select exactly `columns`, each cast to its declared Spark SQL type.

    A missing column fails with its name, rather than Spark's longer analysis error.
    """
    missing = [name for name in columns if name not in df.columns]
    if missing:
        raise ValueError(f"missing column(s) {missing}; the input has {df.columns}")
    return df.select([F.col(name).cast(type_).alias(name) for name, type_ in columns.items()])
