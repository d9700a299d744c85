"""Request/response types and the HTTP handler: auth, faults, recording, routing, errors."""

import hmac
import json
import logging
import re
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Callable, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

from .errors import ApiError, bad_request

log = logging.getLogger("databricks_emulator")


class RecordedRequest(NamedTuple):
    """One call as the emulator received it. Headers are not kept: they carry the token."""

    method: str
    path: str  # without the query string
    body: bytes
    query: dict


@dataclass
class Request:
    method: str
    path: str
    query: dict  # first value of each parameter
    headers: dict
    body: bytes
    params: dict = field(default_factory=dict)  # named groups of the route pattern

    def json(self) -> dict:
        if not self.body:
            return {}
        try:
            data = json.loads(self.body)
        except ValueError as e:
            raise bad_request(f"Malformed JSON request body: {e}", "MALFORMED_REQUEST")
        if not isinstance(data, dict):
            raise bad_request("Request body must be a JSON object", "MALFORMED_REQUEST")
        return data


@dataclass
class Response:
    """A non-JSON answer (Files API downloads, HEAD metadata, empty 204s)."""

    status: int = 200
    body: bytes = b""
    headers: dict = field(default_factory=dict)


Handler = Callable[[Request], "dict | Response"]


class Router:
    """(method, regex) -> handler; the first full match wins."""

    def __init__(self):
        self._routes: list[tuple[str, re.Pattern, Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(pattern), handler))

    def resolve(self, method: str, path: str) -> tuple[Handler, dict]:
        for route_method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                return handler, match.groupdict()
        raise ApiError(404, f"No API found for '{method} {path}'", "ENDPOINT_NOT_FOUND")


def make_handler_class(emulator) -> type[BaseHTTPRequestHandler]:
    """A handler class bound to one emulator (its token, faults, router and request log)."""

    class EmulatorHandler(BaseHTTPRequestHandler):
        # HTTP/1.1 keeps the SDK's pooled connections alive; every response sets Content-Length.
        protocol_version = "HTTP/1.1"
        server_version = "DatabricksEmulator"

        def do_GET(self):
            self._handle()

        do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET

        def log_message(self, format, *args):
            # The default writes the request line to stderr; ours goes to logging, and the
            # request line holds no secret (the token travels only in a header).
            log.debug("%s %s", self.address_string(), format % args)

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()  # the blank line after the last chunk
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _authorized(self) -> bool:
            header = self.headers.get("Authorization", "")
            expected = f"Bearer {emulator.token}"
            return hmac.compare_digest(header.encode(), expected.encode())

        def _handle(self):
            split = urlsplit(self.path)
            path = unquote(split.path)
            query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
            body = self._read_body()
            emulator._record(RecordedRequest(self.command, path, body, query))
            try:
                if not self._authorized():
                    raise ApiError(401, "Invalid access token.", "UNAUTHENTICATED")
                emulator.faults.check_http(self.command, path)
                handler, params = emulator.router.resolve(self.command, path)
                request = Request(self.command, path, query, dict(self.headers), body, params)
                result = handler(request)
                emulator.faults.check_http(self.command, path, after_handling=True)
            except ApiError as e:
                self._send(e.status, json.dumps(e.body()).encode(), "application/json", e.headers)
                return
            except Exception as e:  # a bug in the emulator: answer 500 rather than hang the client
                log.exception("emulator handler failed for %s %s", self.command, path)
                error = ApiError(500, f"Emulator error: {type(e).__name__}: {e}", "INTERNAL_ERROR")
                self._send(500, json.dumps(error.body()).encode(), "application/json", {})
                return
            if isinstance(result, Response):
                self._send(result.status, result.body, None, result.headers)
            else:
                self._send(200, json.dumps(result).encode(), "application/json", {})

        def _send(self, status: int, body: bytes, content_type, headers: dict):
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            for name, value in headers.items():
                self.send_header(name, value)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    return EmulatorHandler
