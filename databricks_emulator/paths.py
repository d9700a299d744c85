"""Map workspace paths (DBFS, /dbfs FUSE, /Volumes) onto the emulator's local directories."""

from pathlib import Path, PurePosixPath

from .errors import bad_request

# What a workspace with "DBFS root and mounts" access disabled answers, followed by the path.
DBFS_ROOT_DISABLED = "DBFS root access is disabled in this workspace"


def _inside(root: Path, workspace_path: str) -> Path:
    """The local path for an absolute workspace path under root; '..' may not climb out."""
    pure = PurePosixPath(workspace_path)
    if not pure.is_absolute():
        raise bad_request(f"Path must be absolute: {workspace_path}")
    parts = []
    for part in pure.parts[1:]:
        if part == "..":
            if not parts:
                raise bad_request(f"Path escapes its root: {workspace_path}")
            parts.pop()
        elif part not in (".", ""):
            parts.append(part)
    return root.joinpath(*parts)


def normalize_dbfs(path: str) -> str:
    """'dbfs:/x' and '/x' are the same DBFS path; the DBFS API answers with '/x'."""
    if not isinstance(path, str) or not path:
        raise bad_request("path is required")
    if path.startswith("dbfs:"):
        path = path[len("dbfs:"):]
    if not path.startswith("/"):
        raise bad_request(f"Path must be absolute: {path}")
    return path


def dbfs_local(dbfs_root: Path, path: str) -> Path:
    return _inside(dbfs_root, normalize_dbfs(path))


def volumes_local(volumes_root: Path, path: str) -> Path:
    """'/Volumes/catalog/schema/volume/...' -> volumes_root/catalog/schema/volume/..."""
    parts = PurePosixPath(path).parts
    if len(parts) < 5 or parts[:2] != ("/", "Volumes"):
        raise bad_request(
            f"Path must be /Volumes/<catalog>/<schema>/<volume>/<path>: {path}"
        )
    return _inside(volumes_root, "/" + "/".join(parts[2:]))


def task_file_local(dbfs_root: Path | None, volumes_root: Path, path: str) -> Path:
    """Where a task's python_file or library lives locally, as a cluster would see it.

    Raises ValueError (the run then ends INTERNAL_ERROR) for locations the emulator has no
    storage for, e.g. /Workspace files or cloud URIs, and for DBFS when dbfs_root is None
    (DBFS root access disabled).
    """
    if dbfs_root is None and (path.startswith(("dbfs:/", "/dbfs/")) or path == "/dbfs"):
        raise ValueError(f"{DBFS_ROOT_DISABLED}: {path}")
    if path.startswith("dbfs:/"):
        return _inside(dbfs_root, path[len("dbfs:"):])
    if path == "/dbfs" or path.startswith("/dbfs/"):
        return _inside(dbfs_root, path[len("/dbfs"):] or "/")
    if path.startswith("/Volumes/"):
        return volumes_local(volumes_root, path)
    raise ValueError(
        f"{path}: the emulator only has storage for dbfs:/, /dbfs/ and /Volumes/ paths"
    )
