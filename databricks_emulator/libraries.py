"""Task libraries: wheels are unzipped into a per-run directory that goes on PYTHONPATH.

Only pure-python wheels work this way (no compiled code, no dependency resolution); other
library kinds (pypi, jar, maven, requirements) are not installed: the task runs with the
packages of the emulator's python.
"""

import zipfile
from pathlib import Path

from .paths import task_file_local


class TaskSetupError(Exception):
    """The task cannot start; the run ends INTERNAL_ERROR with this message."""


def install_wheels(
    wheel_paths: list[str], dbfs_root: Path, volumes_root: Path, target: Path
) -> list[Path]:
    """Unzip each wheel into target/<n>; returns the directories in the given order."""
    dirs = []
    for index, wheel in enumerate(wheel_paths):
        try:
            local = task_file_local(dbfs_root, volumes_root, wheel)
        except Exception as e:
            raise TaskSetupError(f"Library installation failed for {wheel}: {e}")
        if not local.is_file():
            raise TaskSetupError(f"Library installation failed for {wheel}: file does not exist")
        destination = target / str(index)
        try:
            with zipfile.ZipFile(local) as archive:
                archive.extractall(destination)
        except zipfile.BadZipFile:
            raise TaskSetupError(f"Library installation failed for {wheel}: not a wheel (zip) file")
        dirs.append(destination)
    return dirs


def wheel_paths(task: dict, environments: dict) -> tuple[list[str], list]:
    """The wheels a task needs (task libraries, or its serverless environment's dependencies
    that are files) and the entries the emulator does not install."""
    wheels, ignored = [], []
    for library in task.get("libraries") or []:
        if "whl" in library:
            wheels.append(library["whl"])
        else:
            ignored.append(library)
    environment = environments.get(task.get("environment_key"), {})
    for dependency in (environment.get("spec") or {}).get("dependencies") or []:
        is_file = dependency.startswith(("/", "dbfs:/"))
        if is_file and dependency.endswith(".whl"):
            wheels.append(dependency)
        else:
            ignored.append(dependency)
    return wheels, ignored
