"""Files API 2.0 for Unity Catalog volumes (/api/2.0/fs/files and /fs/directories).

Volumes need no creating: any /Volumes/<catalog>/<schema>/<volume> path is usable.
"""

import os
from email.utils import formatdate
from pathlib import Path

from .errors import ApiError
from .handler import Response
from .paths import volumes_local

PAGE_SIZE = 1000  # the Files API's maximum entries per listing page


def _not_found(path: str) -> ApiError:
    # The Files API answers NOT_FOUND (not DBFS's RESOURCE_DOES_NOT_EXIST); both are NotFound in the SDK.
    return ApiError(404, f"The file or directory being accessed is not found: {path}", "NOT_FOUND")


def _conflict(message: str) -> ApiError:
    return ApiError(409, message, "ALREADY_EXISTS")


def _metadata_headers(local: Path) -> dict:
    stat = local.stat()
    return {
        "Content-Length": str(stat.st_size),
        "Content-Type": "application/octet-stream",
        "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
    }


class FilesApi:
    def __init__(self, root: Path):
        self.root = root

    def routes(self, router) -> None:
        files = r"/api/2\.0/fs/files(?P<path>/.+)"
        dirs = r"/api/2\.0/fs/directories(?P<path>/.+?)/?"
        router.add("PUT", files, self.upload)
        router.add("GET", files, self.download)
        router.add("HEAD", files, self.file_metadata)
        router.add("DELETE", files, self.delete_file)
        router.add("PUT", dirs, self.create_directory)
        router.add("GET", dirs, self.list_directory)
        router.add("HEAD", dirs, self.directory_metadata)
        router.add("DELETE", dirs, self.delete_directory)

    def _file(self, path: str) -> Path:
        local = volumes_local(self.root, path)
        if not local.is_file():
            raise _not_found(path)
        return local

    def _directory(self, path: str) -> Path:
        local = volumes_local(self.root, path)
        if not local.is_dir():
            raise _not_found(path)
        return local

    def upload(self, request):
        path = request.params["path"]
        local = volumes_local(self.root, path)
        overwrite = request.query.get("overwrite", "true").lower() != "false"
        if local.is_dir():
            raise _conflict(f"A directory exists at {path}")
        if local.exists() and not overwrite:
            raise _conflict(f"The file being created already exists: {path}")
        try:
            local.parent.mkdir(parents=True, exist_ok=True)  # parents are created implicitly
        except (FileExistsError, NotADirectoryError):
            raise _conflict(f"A file exists where a directory is needed for {path}")
        tmp = local.with_name(f".{local.name}.emulator-tmp")
        tmp.write_bytes(request.body)
        os.replace(tmp, local)
        return Response(204)

    def download(self, request):
        path = request.params["path"]
        local = self._file(path)
        data = local.read_bytes()
        headers = _metadata_headers(local)
        status = 200
        # The SDK's resumable download asks for the rest of a file with "Range: bytes=N-".
        range_header = request.headers.get("Range", "")
        if range_header.startswith("bytes=") and range_header.endswith("-"):
            start = int(range_header[len("bytes="):-1])
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            data = data[start:]
            status = 206
        headers["Content-Length"] = str(len(data))
        return Response(status, data, headers)

    def file_metadata(self, request):
        return Response(200, b"", _metadata_headers(self._file(request.params["path"])))

    def delete_file(self, request):
        self._file(request.params["path"]).unlink()
        return Response(204)

    def create_directory(self, request):
        path = request.params["path"]
        local = volumes_local(self.root, path)
        try:
            local.mkdir(parents=True, exist_ok=True)  # idempotent, like `mkdir -p`
        except (FileExistsError, NotADirectoryError):
            raise _conflict(f"A file exists at or above {path}")
        return Response(204)

    def list_directory(self, request):
        path = request.params["path"].rstrip("/")
        local = self._directory(path)
        try:
            page_size = min(int(request.query.get("page_size") or PAGE_SIZE), PAGE_SIZE)
            start = int(request.query.get("page_token") or 0)
        except ValueError:
            raise ApiError(400, "page_size and page_token must be integers")
        children = sorted(local.iterdir())
        page = children[start : start + page_size]
        contents = []
        for child in page:
            stat = child.stat()
            entry = {
                "path": f"{path}/{child.name}" + ("/" if child.is_dir() else ""),
                "name": child.name,
                "is_directory": child.is_dir(),
                "last_modified": int(stat.st_mtime * 1000),
            }
            if not child.is_dir():
                entry["file_size"] = stat.st_size
            contents.append(entry)
        result = {"contents": contents}
        if start + page_size < len(children):
            result["next_page_token"] = str(start + page_size)
        return result

    def directory_metadata(self, request):
        self._directory(request.params["path"])
        return Response(200)

    def delete_directory(self, request):
        path = request.params["path"]
        local = self._directory(path)
        if any(local.iterdir()):
            # Like Databricks, only an empty directory can be deleted through this call.
            raise ApiError(409, f"The directory is not empty: {path}", "FAILED_PRECONDITION")
        local.rmdir()
        return Response(204)
