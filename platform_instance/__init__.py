"""Pieces of the Dagster instance that `dagster.yaml` names by module path (see event_log.py)."""
