"""The job package shipped to Databricks: an installable wheel named by its content."""

import base64
import hashlib
import importlib.util
import io
import zipfile
from importlib.metadata import version
from pathlib import Path

from resources.job_package import build_job_package


def test_the_same_sources_give_the_same_wheel_and_name():
    first, second = build_job_package(), build_job_package()

    assert first.wheel.name == second.wheel.name
    assert first.wheel.content == second.wheel.content
    assert first.wheel.name.startswith("platform_jobs-0.0.0+") and first.wheel.name.endswith("-py3-none-any.whl")


def test_the_wheel_holds_the_job_package_and_the_orchestrators_dagster_pipes_and_requires_nothing():
    package = build_job_package()
    archive = zipfile.ZipFile(io.BytesIO(package.wheel.content))
    names = archive.namelist()
    dist_info = next(n for n in names if n.endswith(".dist-info/METADATA")).rsplit("/", 1)[0]

    assert {"jobs/entrypoint.py", "jobs/runtime.py", "jobs/tables/gold/daily_nation_revenue.py"} <= set(names)
    assert not any(n.startswith(("platform_assets/", "resources/")) for n in names)  # no dagster on clusters
    # A cluster without PyPI installs it: dagster_pipes travels inside, as the orchestrator has it.
    assert "Requires-Dist" not in archive.read(f"{dist_info}/METADATA").decode()
    installed = Path(importlib.util.find_spec("dagster_pipes").origin)
    assert archive.read("dagster_pipes/__init__.py") == installed.read_bytes()
    assert f'"{version("dagster-pipes")}"' in archive.read("dagster_pipes/version.py").decode()
    for line in archive.read(f"{dist_info}/RECORD").decode().splitlines():
        name, digest, size = line.split(",")
        if digest:  # RECORD lists itself without a hash
            content = archive.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
            assert (digest, int(size)) == (f"sha256={expected}", len(content)), name


def test_the_launcher_runs_the_job_entrypoint():
    launcher = build_job_package().launcher

    assert b"from jobs.entrypoint import main" in launcher.content
    assert launcher.name.startswith("launch_") and launcher.name.endswith(".py")
