"""Spark names for table modules, imported on first use.

The orchestrator imports every table module to learn its declaration, and it must not load
Spark to do so. Table modules therefore take `F` (pyspark.sql.functions) and `DataFrame` from
here: `F` imports pyspark the first time a transform calls it (in the job), and `DataFrame` is
the real class for type checkers and a name in annotations otherwise.
"""

from __future__ import annotations

import importlib
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql import functions as F
else:
    DataFrame = "pyspark.sql.DataFrame"  # annotations only
    Column = "pyspark.sql.Column"

    class _OnFirstUse(types.ModuleType):
        def __getattr__(self, name: str) -> Any:
            return getattr(importlib.import_module(self.__name__), name)

    F = _OnFirstUse("pyspark.sql.functions")

__all__ = ["Column", "DataFrame", "F"]
