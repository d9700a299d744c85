"""The job code shipped to Databricks: a wheel of `jobs/` and a launcher script.

The wheel carries the orchestrator's own `dagster_pipes` (one pure-Python module, Apache 2.0)
instead of requiring it: a cluster installing a requirement needs PyPI, and workspaces without
egress (PrivateLink, serverless network policies) have none. The wheel requires nothing.

Both are named by the hash of what they contain, so an unchanged package has the same name
and is not uploaded again. The wheel is written here with zipfile (a wheel is a zip with
three metadata files, PEP 427) rather than by a build backend: building it takes
milliseconds, needs no network, and the same sources always give the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import zipfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import NotFound

from resources.paths import PROJECT_DIR

DISTRIBUTION = "platform_jobs"
LAUNCHER_SOURCE = b"from jobs.entrypoint import main\n\nmain()\n"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: same sources, same bytes


@dataclass(frozen=True)
class Artifact:
    name: str
    content: bytes


@dataclass(frozen=True)
class JobPackage:
    wheel: Artifact
    launcher: Artifact


def build_job_package() -> JobPackage:
    """The wheel of jobs/ with this orchestrator's dagster_pipes inside, and its launcher."""
    sources = {
        path.relative_to(PROJECT_DIR).as_posix(): path.read_bytes()
        for path in sorted((PROJECT_DIR / "jobs").rglob("*.py"))
    }
    sources |= _vendored("dagster_pipes")
    digest = hashlib.sha256()
    for name, content in sources.items():
        digest.update(name.encode() + b"\0" + content + b"\0")
    wheel_version = f"0.0.0+{digest.hexdigest()[:16]}"
    launcher_digest = hashlib.sha256(LAUNCHER_SOURCE).hexdigest()[:16]
    return JobPackage(
        wheel=Artifact(
            f"{DISTRIBUTION}-{wheel_version}-py3-none-any.whl",
            _wheel_bytes(sources, wheel_version),
        ),
        launcher=Artifact(f"launch_{launcher_digest}.py", LAUNCHER_SOURCE),
    )


def _vendored(package: str) -> dict[str, bytes]:
    """The files of an installed pure-Python package, by their path inside a wheel."""
    directory = Path(importlib.util.find_spec(package).origin).parent
    return {
        f"{package}/{path.relative_to(directory).as_posix()}": path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def _wheel_bytes(sources: dict[str, bytes], wheel_version: str) -> bytes:
    dist_info = f"{DISTRIBUTION}-{wheel_version}.dist-info"
    files = {
        **sources,
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: {wheel_version}\n"
            f"Summary: the platform's table jobs, with dagster-pipes {version('dagster-pipes')} inside\n"
        ).encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: delta-asset-platform\n"
            b"Root-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [f"{name},sha256={_b64_sha256(content)},{len(content)}" for name, content in files.items()]
    files[f"{dist_info}/RECORD"] = ("\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(zipfile.ZipInfo(name, _ZIP_TIME), content)
    return buffer.getvalue()


def _b64_sha256(content: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()


def upload_if_absent(client: WorkspaceClient, directory: str, artifact: Artifact) -> tuple[str, bool]:
    """Upload `artifact` into the volume folder `directory` unless a file of that name is there;
    return its path and whether it was uploaded. One PUT: the file appears whole, so a parallel
    step never installs half a wheel."""
    path = f"{directory.rstrip('/')}/{artifact.name}"
    try:
        client.files.get_metadata(path)
        return path, False
    except NotFound:
        client.files.upload(path, io.BytesIO(artifact.content), overwrite=True)
        return path, True
