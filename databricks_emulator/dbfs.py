"""DBFS API 2.0 backed by a local directory: mkdirs, put, get-status, read, list, delete,
move, and the streaming create / add-block / close the SDK's `dbfs.upload` uses."""

import base64
import itertools
import os
import shutil
import threading
from pathlib import Path

from .errors import ApiError, bad_request, not_found
from .paths import DBFS_ROOT_DISABLED, dbfs_local, normalize_dbfs

ONE_MB = 1024 * 1024
# Databricks: "If length is not specified, at most 0.5 MB is returned"; more than 1 MB fails.
DEFAULT_READ_LENGTH = 524288
MAX_READ_LENGTH = ONE_MB
MAX_BLOCK_SIZE = ONE_MB


def _bool(value) -> bool:
    # JSON bodies carry true/false; query strings carry "true"/"false".
    return value is True or str(value).lower() == "true"


def _decode_b64(data, what: str) -> bytes:
    try:
        return base64.b64decode(data or "", validate=True)
    except (ValueError, TypeError):
        raise bad_request(f"{what} is not valid base64")


def _root_disabled(request):
    """Every call of a workspace with DBFS root access disabled: 403, naming the path."""
    body = request.json() if request.method == "POST" else {}
    path = request.query.get("path") or body.get("path") or body.get("source_path") or "/"
    raise ApiError(403, f"{DBFS_ROOT_DISABLED}: {path}", "PERMISSION_DENIED")


class Dbfs:
    def __init__(self, root: Path, scratch: Path, enabled: bool = True):
        self.root = root
        self.enabled = enabled
        self._scratch = scratch  # open create-handles live here until close
        self._handles: dict[int, tuple[Path, Path]] = {}
        self._next_handle = itertools.count(1)
        self._lock = threading.Lock()

    def routes(self, router) -> None:
        endpoints = (("POST", "mkdirs", self.mkdirs), ("POST", "put", self.put),
                     ("GET", "get-status", self.get_status), ("GET", "read", self.read),
                     ("GET", "list", self.list), ("POST", "delete", self.delete),
                     ("POST", "move", self.move), ("POST", "create", self.create),
                     ("POST", "add-block", self.add_block), ("POST", "close", self.close))
        for method, name, handler in endpoints:
            router.add(method, f"/api/2.0/dbfs/{name}", handler if self.enabled else _root_disabled)

    # -- helpers -------------------------------------------------------------------------

    def _file_info(self, dbfs_path: str, local: Path) -> dict:
        stat = local.stat()
        return {
            "path": dbfs_path,
            "is_dir": local.is_dir(),
            "file_size": 0 if local.is_dir() else stat.st_size,
            "modification_time": int(stat.st_mtime * 1000),
        }

    def _existing(self, path: str) -> tuple[str, Path]:
        local = dbfs_local(self.root, path)
        if not local.exists():
            raise not_found(f"No file or directory exists on path {normalize_dbfs(path)}.")
        return normalize_dbfs(path), local

    def _writable_target(self, path: str, overwrite: bool) -> Path:
        local = dbfs_local(self.root, path)
        if local.exists() and (local.is_dir() or not overwrite):
            raise bad_request(
                f"A file or directory already exists at the input path {normalize_dbfs(path)}.",
                "RESOURCE_ALREADY_EXISTS",
            )
        self._make_parents(local, path)
        return local

    def _make_parents(self, local: Path, path: str) -> None:
        try:
            local.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise bad_request(
                f"A file exists where a directory is needed for {normalize_dbfs(path)}.",
                "RESOURCE_ALREADY_EXISTS",
            )

    # -- endpoints -----------------------------------------------------------------------

    def mkdirs(self, request):
        path = request.json().get("path")
        local = dbfs_local(self.root, path)
        try:
            local.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise bad_request(
                f"A file exists at or above the path {normalize_dbfs(path)}.",
                "RESOURCE_ALREADY_EXISTS",
            )
        return {}

    def put(self, request):
        body = request.json()
        contents = _decode_b64(body.get("contents"), "contents")
        if len(contents) > MAX_BLOCK_SIZE:
            raise bad_request(
                "File uploads with 'contents' are limited to 1 MB; use create/add-block/close.",
                "MAX_BLOCK_SIZE_EXCEEDED",
            )
        local = self._writable_target(body.get("path"), _bool(body.get("overwrite", False)))
        _atomic_write(local, contents)
        return {}

    def get_status(self, request):
        path, local = self._existing(request.query.get("path"))
        return self._file_info(path, local)

    def read(self, request):
        path, local = self._existing(request.query.get("path"))
        if local.is_dir():
            raise bad_request(f"Cannot read a directory: {path}.")
        try:
            offset = int(request.query.get("offset", 0))
            length = int(request.query.get("length", DEFAULT_READ_LENGTH))
        except ValueError:
            raise bad_request("offset and length must be integers")
        if offset < 0 or length < 0:
            raise bad_request("offset and length must not be negative")
        if length > MAX_READ_LENGTH:
            raise bad_request(
                f"Cannot read more than {MAX_READ_LENGTH} bytes at once.", "MAX_READ_SIZE_EXCEEDED"
            )
        with open(local, "rb") as f:
            f.seek(offset)
            data = f.read(length)
        return {"bytes_read": len(data), "data": base64.b64encode(data).decode()}

    def list(self, request):
        path, local = self._existing(request.query.get("path"))
        if not local.is_dir():
            return {"files": [self._file_info(path, local)]}
        prefix = path.rstrip("/")
        files = [
            self._file_info(f"{prefix}/{child.name}", child) for child in sorted(local.iterdir())
        ]
        return {"files": files}

    def delete(self, request):
        body = request.json()
        local = dbfs_local(self.root, body.get("path"))
        if local == self.root:
            raise bad_request("Cannot delete the DBFS root.")
        if not local.exists():
            return {}  # deleting a missing path succeeds, as on Databricks
        if local.is_dir():
            if any(local.iterdir()) and not _bool(body.get("recursive", False)):
                raise bad_request(
                    f"Directory {normalize_dbfs(body['path'])} is not empty; use recursive.",
                    "IO_ERROR",
                )
            shutil.rmtree(local)
        else:
            local.unlink()
        return {}

    def move(self, request):
        body = request.json()
        source, local_source = self._existing(body.get("source_path"))
        target = dbfs_local(self.root, body.get("destination_path"))
        if target.exists():
            raise bad_request(
                f"A file or directory already exists at {body['destination_path']}.",
                "RESOURCE_ALREADY_EXISTS",
            )
        self._make_parents(target, body["destination_path"])
        os.replace(local_source, target)
        return {}

    def create(self, request):
        body = request.json()
        target = self._writable_target(body.get("path"), _bool(body.get("overwrite", False)))
        with self._lock:
            handle = next(self._next_handle)
            buffer = self._scratch / f"handle-{handle}"
            buffer.write_bytes(b"")
            self._handles[handle] = (buffer, target)
        return {"handle": handle}

    def _handle(self, body) -> tuple[Path, Path]:
        try:
            return self._handles[int(body.get("handle"))]
        except (KeyError, TypeError, ValueError):
            raise ApiError(404, f"Unknown handle {body.get('handle')}.", "RESOURCE_DOES_NOT_EXIST")

    def add_block(self, request):
        body = request.json()
        data = _decode_b64(body.get("data"), "data")
        if len(data) > MAX_BLOCK_SIZE:
            raise bad_request("A block may not exceed 1 MB.", "MAX_BLOCK_SIZE_EXCEEDED")
        with self._lock:
            buffer, _ = self._handle(body)
            with open(buffer, "ab") as f:
                f.write(data)
        return {}

    def close(self, request):
        body = request.json()
        with self._lock:
            buffer, target = self._handle(body)
            del self._handles[int(body["handle"])]
        # The file appears whole on close: readers never see half an upload.
        os.replace(buffer, target)
        return {}


def _atomic_write(local: Path, contents: bytes) -> None:
    tmp = local.with_name(f".{local.name}.emulator-tmp")
    tmp.write_bytes(contents)
    os.replace(tmp, local)
