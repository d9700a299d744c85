"""Dagster homes for tests that run Dagster's own processes (the CLI, the daemon, the webserver),
on either storage a team can choose: the project's dagster.yaml (SQLite) or
instances/postgres.yaml on an empty database of the project's PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from resources.paths import PROJECT_DIR

STORAGES = ["sqlite", "postgres"]
INSTANCE_FILES = {"sqlite": PROJECT_DIR / "dagster.yaml", "postgres": PROJECT_DIR / "instances" / "postgres.yaml"}


@dataclass
class Home:
    """A Dagster home on an empty storage, and the settings its processes need (PostgreSQL's)."""

    path: Path
    env: dict[str, str]

    @contextmanager
    def instance(self) -> Iterator[dg.DagsterInstance]:
        """The instance, with its settings in this process's environment while it is open: the
        instance file reads them, and so does every process that opens it from here (a code
        server that a GraphQL query starts)."""
        with pytest.MonkeyPatch.context() as patch:
            for name, value in self.env.items():
                patch.setenv(name, value)
            with dg.DagsterInstance.from_config(str(self.path)) as instance:
                yield instance


def new_home(root: Path, storage: str, request: pytest.FixtureRequest) -> Home:
    """A Dagster home under `root` on an empty `storage` (a new database, for PostgreSQL; the
    `postgres_database` fixture skips or fails when the server is not installed)."""
    path = root / "dagster_home"
    path.mkdir()
    shutil.copy(INSTANCE_FILES[storage], path / "dagster.yaml")
    return Home(path, request.getfixturevalue("postgres_database")("dagster") if storage == "postgres" else {})
