"""The project's local directories; each overridable by an environment variable."""

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
LOCAL_DIR = PROJECT_DIR / ".local"


def local_dir(env_var: str, default_name: str) -> str:
    """`$env_var` if set, else `.local/<default_name>` in the project; always absolute, since
    the orchestrator and its job processes run from different working directories."""
    return str(Path(os.environ.get(env_var) or LOCAL_DIR / default_name).resolve())


def warehouse_dir() -> str:
    return local_dir("PLATFORM_WAREHOUSE_DIR", "warehouse")


def landing_dir() -> str:
    return local_dir("PLATFORM_LANDING_DIR", "landing")
