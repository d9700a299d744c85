"""Task libraries, installed as on a cluster without network egress: wheels are unzipped into
a per-task directory that goes on PYTHONPATH; whatever needs a package index (pypi, maven,
cran and requirements libraries, serverless dependencies that are not files, a wheel's
requirement the runtime lacks) fails the task, since PyPI is out of reach.

Only pure-python wheels work this way (no compiled code); jar and egg libraries are not
installed. With `pypi_reachable` index libraries are left out instead (the task runs with the
packages of the emulator's python).
"""

import json
import zipfile
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .paths import task_file_local

# Distributions a Databricks Runtime ships (PEP 503 names), so a wheel may require them.
RUNTIME_PACKAGES = frozenset((
    "pyspark", "delta-spark", "pandas", "numpy", "pyarrow", "databricks-sdk", "requests",
    "pyyaml", "psutil", "six", "python-dateutil", "pytz", "grpcio", "protobuf",
    "googleapis-common-protos", "typing-extensions", "urllib3", "certifi", "idna",
    "charset-normalizer",
))
# The index each library kind installs from.
INDEXES = {"pypi": "PyPI", "requirements": "PyPI", "maven": "Maven Central", "cran": "CRAN"}


class TaskSetupError(Exception):
    """The task cannot start; the run ends INTERNAL_ERROR with this message."""


def install_wheels(
    wheel_paths: list[str], dbfs_root: Path | None, volumes_root: Path, target: Path
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


def task_libraries(task: dict, environments: dict, pypi_reachable: bool) -> tuple[list[str], list]:
    """The wheels a task needs (task libraries, or its serverless environment's dependencies
    that are wheel files) and the entries the emulator does not install. Raises TaskSetupError
    for one that needs a package index, unless `pypi_reachable`."""
    wheels, ignored = [], []
    for library in task.get("libraries") or []:
        kind = next((kind for kind in INDEXES if kind in library), None)
        if "whl" in library:
            wheels.append(library["whl"])
        elif kind is not None and not pypi_reachable:
            raise _unreachable(f"{kind} {_described(library[kind])}", INDEXES[kind])
        else:
            ignored.append(library)
    environment = environments.get(task.get("environment_key"), {})
    for dependency in (environment.get("spec") or {}).get("dependencies") or []:
        is_file = dependency.startswith(("/", "dbfs:/"))
        if is_file and dependency.endswith(".whl"):
            wheels.append(dependency)
        elif not is_file and not pypi_reachable:
            raise _unreachable(f"environment dependency {json.dumps(dependency)}", "PyPI")
        else:
            ignored.append(dependency)
    return wheels, ignored


def check_requirements(wheels: list[str], dirs: list[Path]) -> None:
    """Refuse a wheel whose Requires-Dist names a distribution that neither the runtime nor
    another wheel of the task provides: pip would have to fetch it from PyPI. A requirement's
    environment marker is evaluated for the emulator's Python, without extras; one that cannot
    be read is taken to be needed."""
    metadata = [_metadata(directory) for directory in dirs]
    installed = RUNTIME_PACKAGES | {canonicalize_name(m.get("Name", "")) for m in metadata}
    for wheel, wheel_metadata in zip(wheels, metadata):
        for line in wheel_metadata.get_all("Requires-Dist") or []:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                requirement = None
            needed = requirement is None or (
                canonicalize_name(requirement.name) not in installed
                and (requirement.marker is None or requirement.marker.evaluate({"extra": ""})))
            if needed:
                spec = line.partition(";")[0].strip()
                raise _unreachable(f"whl {json.dumps(wheel)} (requires {spec})", "PyPI")


def _metadata(directory: Path) -> Message:
    found = sorted(directory.glob("*.dist-info/METADATA"))
    return HeaderParser().parsestr(found[0].read_text(errors="replace") if found else "")


def _described(spec) -> str:
    """A library's spec as Databricks prints it: {package: "x"}, or the path of requirements."""
    if isinstance(spec, dict):
        return "{" + ", ".join(f"{key}: {json.dumps(value)}" for key, value in spec.items()) + "}"
    return json.dumps(spec)


def _unreachable(library: str, index: str) -> TaskSetupError:
    return TaskSetupError(f"Library installation failed for library due to user error for "
                          f"{library}: cannot reach {index} (the workspace has no network egress)")
