"""Job side: table declarations and the runtime that executes one of them.

Imports only dagster-pipes, pyspark and delta: this package runs on Databricks clusters
that have no dagster installed.
"""
