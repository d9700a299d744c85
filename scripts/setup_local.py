"""`make setup`: resolve Delta's jars once and prepare the Dagster home (and, with
PLATFORM_INSTANCE=postgres and no PLATFORM_PG_HOST, start the embedded PostgreSQL)."""

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from resources.local_spark import resolve_delta_jars
from resources.paths import PROJECT_DIR
from scripts import postgres

INSTANCE_ENV = "PLATFORM_INSTANCE"
# The project's instance files, by PLATFORM_INSTANCE: only their storage differs.
INSTANCE_FILES = {
    "sqlite": PROJECT_DIR / "dagster.yaml",
    "postgres": PROJECT_DIR / "instances" / "postgres.yaml",
}


def instance_setting(environ: Mapping[str, str]) -> str:
    """PLATFORM_INSTANCE: `sqlite` (the default) or `postgres`; anything else fails, naming it."""
    value = environ.get(INSTANCE_ENV) or "sqlite"
    if value not in INSTANCE_FILES:
        raise ValueError(f"{INSTANCE_ENV}={value!r}: expected one of {', '.join(INSTANCE_FILES)}")
    return value


def link_instance_config(dagster_home: Path, instance: str = "sqlite") -> None:
    """Point `$DAGSTER_HOME/dagster.yaml` at the project's file for `instance`, unless the home
    has a file of its own. A link to the other project file is switched: the setting changed.

    `instance` is explicit, not read from the environment: tests and benchmarks make homes of
    their own, each of which must stay a separate SQLite instance whatever the team's setting."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    target = INSTANCE_FILES[instance]
    ours = {path.resolve() for path in INSTANCE_FILES.values()}
    if not config.exists() and not config.is_symlink():
        config.symlink_to(target)
    elif config.is_symlink() and config.resolve() in ours:
        if config.resolve() != target.resolve():
            config.unlink()
            config.symlink_to(target)
            print(f"{config} now links {target.relative_to(PROJECT_DIR)} ({INSTANCE_ENV}={instance})")
    else:
        print(f"keeping {config}: it is not one of the project's instance files")


def prepare_postgres(environ: Mapping[str, str]) -> None:
    """Start the embedded server, or check that a managed server's settings are complete."""
    dirs = postgres.Dirs.from_env()
    if postgres.is_embedded(environ, postgres.recorded_port(dirs)):
        values = postgres.start(dirs, environ)
        print(f"embedded PostgreSQL at {values[postgres.HOST_ENV]}:{values[postgres.PORT_ENV]} "
              f"(`make postgres-stop` stops it)")
    else:
        values = postgres.connection_env(environ, None)
        print(f"PostgreSQL at {values[postgres.HOST_ENV]}:{values[postgres.PORT_ENV]}, "
              f"database {values[postgres.DB_ENV]} (managed: not started here)")


def main() -> int:
    try:
        instance = instance_setting(os.environ)
        if instance == "postgres":
            prepare_postgres(os.environ)
    except (ValueError, postgres.PostgresError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    jars = resolve_delta_jars()
    print(f"Delta jars ready: {len(jars)} files")
    if "DAGSTER_HOME" in os.environ:
        link_instance_config(Path(os.environ["DAGSTER_HOME"]), instance)
    return 0


if __name__ == "__main__":
    sys.exit(main())
