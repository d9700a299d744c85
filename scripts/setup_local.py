"""`make setup`: resolve Delta's jars once and prepare the Dagster home."""

import os
from pathlib import Path

from resources.local_spark import resolve_delta_jars
from resources.paths import PROJECT_DIR


def link_instance_config(dagster_home: Path) -> None:
    """Point `$DAGSTER_HOME/dagster.yaml` at the project's, unless the home has its own."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    if not config.exists() and not config.is_symlink():
        config.symlink_to(PROJECT_DIR / "dagster.yaml")
    elif config.resolve() != (PROJECT_DIR / "dagster.yaml").resolve():
        print(f"keeping {config}: it is not the project's dagster.yaml")


if __name__ == "__main__":
    jars = resolve_delta_jars()
    print(f"Delta jars ready: {len(jars)} files")
    if "DAGSTER_HOME" in os.environ:
        link_instance_config(Path(os.environ["DAGSTER_HOME"]))
