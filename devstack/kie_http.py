"""The kie.ai emulator's HTTP plumbing: reading requests, answering in kie.ai's envelope, authorising."""

from __future__ import annotations

import contextlib
import hmac
import json
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

if TYPE_CHECKING:
    from devstack.kie_emulator import KieEmulator

ENVELOPE_MESSAGES: Final[dict[int, str]] = {
    200: "success",
    401: "You do not have access permissions",
    402: "Insufficient credits",
    404: "Not found",
    422: "Invalid URL (External file URLs are not supported)",
    429: "Rate limited",
    455: "Service unavailable",
    500: "Server error",
    505: "The feature is disabled",
}
"""kie.ai's envelope messages per code, as used for injected download-url and record-info codes."""


class _EmulatorServer(Protocol):
    emulator: KieEmulator


class HandlerBase(BaseHTTPRequestHandler):
    """What every route of the emulator's HTTP handler shares: reading, answering, authorising."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "kie-emulator/1.0"
    sys_version = ""

    @property
    def emulator(self) -> KieEmulator:
        return cast("_EmulatorServer", self.server).emulator

    def log_message(self, format: str, *args: Any) -> None:
        if self.emulator.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    # -- plumbing ---------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        head_only: bool = False,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self._headers_sent = True
        if body and not head_only:
            self.wfile.write(body)

    def _send_json(self, status: int, payload: object, head_only: bool = False) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        self._send(status, body, "application/json; charset=utf-8", head_only)

    def _envelope(self, code: int, msg: str | None = None, data: object = None) -> None:
        self._send_json(200, {"code": code, "msg": msg or ENVELOPE_MESSAGES.get(code, "error"), "data": data})

    def _authorized(self) -> bool:
        scheme, _, token = self.headers.get("Authorization", "").strip().partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self.emulator.api_key.encode()
        )

    def _dispatch(self, method: str) -> None:
        self._headers_sent = False
        split = urllib.parse.urlsplit(self.path)
        path = split.path
        self.emulator._log_request(method, path, dict(self.headers.items()))
        try:
            body = self._read_body()
            self._route(method, path, urllib.parse.parse_qs(split.query), body)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        except Exception:
            self.close_connection = True
            if self._headers_sent:
                return
            with contextlib.suppress(OSError):
                self._envelope(500, "Server error")

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> None:
        raise NotImplementedError  # the emulator's handler routes (kie_emulator._Handler)
