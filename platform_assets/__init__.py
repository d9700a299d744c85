"""Dagster definitions built from the table declarations in jobs/. Never touches Spark."""
