"""`make setup`: resolve Delta's jars once and prepare the Dagster home."""

import os
from pathlib import Path

from resources.local_spark import resolve_delta_jars
from resources.paths import PROJECT_DIR


def link_instance_config(dagster_home: Path) -> None:
    """Point `$DAGSTER_HOME/dagster.yaml` at the project's dagster.yaml."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    link = dagster_home / "dagster.yaml"
    if not link.is_symlink():
        link.unlink(missing_ok=True)
        link.symlink_to(PROJECT_DIR / "dagster.yaml")


if __name__ == "__main__":
    jars = resolve_delta_jars()
    print(f"Delta jars ready: {len(jars)} files")
    if "DAGSTER_HOME" in os.environ:
        link_instance_config(Path(os.environ["DAGSTER_HOME"]))
