"""A kie.ai emulator: a loopback HTTP server speaking kie.ai's wire format, with injectable faults."""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import hashlib
import hmac
import json
import secrets
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from types import FrameType
from typing import Any, Final, Self

from devstack.kie_api import _NOT_FOUND, DOWNLOAD_URL_PATH, RECORD_INFO_PATHS, ApiRoutes
from devstack.kie_faults import (
    FAULT_KINDS,
    FaultInjection,
    FileFault,
    _EnvelopeFault,
    _PendingFileFault,
    _SlowAnswer,
)
from devstack.kie_files import BLOCK_SIZE, FileLinks, SyntheticFile, _Served
from devstack.kie_http import ENVELOPE_MESSAGES

__all__ = [
    "BLOCK_SIZE",
    "DOWNLOAD_URL_PATH",
    "ENVELOPE_MESSAGES",
    "RECORD_INFO_PATHS",
    "FileFault",
    "KieEmulator",
    "SyntheticFile",
    "main",
    "send_callback",
    "sign",
]

REQUEST_LOG_LIMIT: Final = 1000


# --------------------------------------------------------------------------------------------------
# Signed callbacks (the sender side of kie.ai's webhook HMAC)


def sign(hmac_key: str, task_id: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers kie.ai sends with a callback: base64(HMAC-SHA256(key, f"{task_id}.{timestamp}"))."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(hmac_key.encode(), f"{task_id}.{ts}".encode(), hashlib.sha256).digest()
    return {"X-Webhook-Timestamp": str(ts), "X-Webhook-Signature": base64.b64encode(mac).decode()}


def send_callback(
    url: str,
    body: dict[str, Any],
    task_id: str,
    hmac_key: str | None,
    timestamp: int | None = None,
    timeout: float = 15.0,
) -> tuple[int, bytes]:
    """POST ``body`` as JSON to ``url`` like kie.ai does (signed when ``hmac_key``); return (status, body)."""
    headers = {"Content-Type": "application/json", "User-Agent": "kie-emulator/1.0"}
    if hmac_key is not None:
        headers.update(sign(hmac_key, task_id, timestamp))
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


# --------------------------------------------------------------------------------------------------
# HTTP server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: KieEmulator) -> None:
        self.emulator = emulator
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Like ThreadingMixIn.process_request, but the connection is tracked before its thread starts,
        # so that stop() can close every connection and join every thread.
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        self.emulator._track(request, thread)
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.emulator._untrack(request)


class _Handler(ApiRoutes, FileLinks):
    """Routes each request: kie.ai's API, the file links, the admin API."""

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> None:
        emu = self.emulator
        head_only = method == "HEAD"
        if path.startswith("/files/") and method in ("GET", "HEAD"):
            self._send(403, b"error code: 1010", "text/plain; charset=UTF-8", head_only)
        elif path.startswith("/dl/") and method in ("GET", "HEAD"):
            self._serve_link(method, urllib.parse.unquote(path[len("/dl/") :]), query)
        elif path == DOWNLOAD_URL_PATH and method == "POST":
            self._download_url(body)
        elif path in emu._record_info_paths and method == "GET":
            self._record_info(path, query)
        elif path.startswith("/_emulator/"):
            self._admin(method, path, body)
        else:
            self._send_json(
                404, {"code": 404, "msg": f"No endpoint {method} {path}", "data": None}, head_only
            )

    # -- kie.ai API -------------------------------------------------------------------------------


class KieEmulator(FaultInjection):
    """A kie.ai emulator on loopback: download-url, record-info, signed expiring file links, faults.

    Use it as a context manager (or ``start()`` / ``stop()``). The socket is bound on construction, so
    ``base_url`` and ``add_file()`` work before ``start()``. Counters and the request log are public,
    read them freely; they are updated under a lock.
    """

    def __init__(
        self,
        api_key: str = "test-kie-api-key",
        host: str = "127.0.0.1",
        port: int = 0,
        link_ttl_seconds: int = 1200,
        clock: Callable[[], float] = time.time,
        *,
        bandwidth_limit_bps: int | None = None,
        accept_ranges: bool = True,
        validators: bool = True,
        honour_if_range: bool = True,
        verbose: bool = False,
    ) -> None:
        self.api_key = api_key
        self.link_ttl_seconds = link_ttl_seconds
        self.bandwidth_limit_bps = bandwidth_limit_bps
        """Per-response body rate limit in bytes per second (None: unlimited); settable at any time."""
        self.accept_ranges = accept_ranges
        """False: links ignore Range (200, whole body, no Accept-Ranges), as a source without Range support."""
        self.validators = validators
        """False: links send neither ETag nor Last-Modified (and no If-Range can match), like some origins."""
        self.honour_if_range = honour_if_range
        """False: links ignore If-Range and serve any Range asked, whatever version the client holds."""
        self.verbose = verbose
        self._clock = clock
        self._clock_offset = 0.0
        self._link_key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._files: dict[str, _Served] = {}
        self._versions: dict[str, list[SyntheticFile]] = {}
        self._result_urls: dict[str, str] = {}
        self._tasks: dict[tuple[str, str], dict[str, Any]] = {}
        self._record_info_paths = frozenset(RECORD_INFO_PATHS.values())
        self._download_url_faults: list[_EnvelopeFault] = []
        self._record_info_faults: list[_EnvelopeFault] = []
        self._record_info_delays: list[_SlowAnswer] = []
        self._file_faults: dict[str, list[_PendingFileFault]] = {}
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

        self.download_url_calls: collections.Counter[str] = collections.Counter()
        """download-url calls per requested URL (every call, whatever its answer)."""
        self.record_info_calls: collections.Counter[str] = collections.Counter()
        """record-info calls per taskId (every call, whatever its answer)."""
        self.file_requests: collections.Counter[str] = collections.Counter()
        """GETs of /dl/<name> per file name (every GET, whatever its answer)."""
        self.bytes_served = 0
        """Body bytes of files sent on /dl links."""
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        """(method, path without query, headers) of the last 1000 requests."""

        self._server = _Server((host, port), self)

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address the server is bound to."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The TCP port the server is bound to."""
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://<host>:<port>``, the stand-in for ``https://api.kie.ai`` and for the file hosts."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        """Serve in a background thread."""
        if self._closed:
            raise RuntimeError("a stopped KieEmulator cannot be restarted")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"kie-emulator:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and every open connection, and join all threads."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections.items())
        for sock, _ in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for _, thread in connections:
            if thread is not threading.current_thread():
                thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- time -------------------------------------------------------------------------------------

    def now(self) -> float:
        """The emulator's notion of the current Unix time: ``clock() + clock offset``."""
        return self._clock() + self._clock_offset

    def set_clock_offset(self, seconds: float) -> None:
        """Shift the emulator's clock (e.g. by 1201 s to make every issued link expire)."""
        self._clock_offset = seconds

    # -- content ----------------------------------------------------------------------------------

    def result_url(self, name: str) -> str:
        """The raw result URL of a file name, as kie.ai would put it in a callback."""
        return f"{self.base_url}/files/{urllib.parse.quote(name, safe='/')}"

    def add_file(self, file: SyntheticFile, result_url: str | None = None) -> str:
        """Register a file and return its result URL (``{base_url}/files/{name}`` unless one is given).

        Giving a kie.ai-looking ``result_url`` (``https://tempfile.aiquickdraw.com/...``) lets a sample
        callback keep its real host names: download-url still answers with a loopback link.
        """
        url = result_url or self.result_url(file.name)
        served = _Served.of(file, self.now())
        with self._lock:
            self._files[file.name] = served
            self._versions[file.name] = [file]
            self._result_urls[url] = file.name
        return url

    def remove_file(self, name: str) -> None:
        """Forget a file (as when kie.ai deletes it): download-url then answers 422, links 404."""
        with self._lock:
            self._files.pop(name, None)
            self._result_urls = {u: n for u, n in self._result_urls.items() if n != name}

    def file(self, name: str) -> SyntheticFile:
        """The registered file of that name (its current version)."""
        with self._lock:
            return self._files[name].file

    def versions(self, name: str) -> list[SyntheticFile]:
        """Every version the file of that name has had (``FileFault.new_version``), oldest first."""
        with self._lock:
            return list(self._versions[name])

    def add_task(self, family: str, task_id: str, response: dict[str, Any]) -> None:
        """Register the ``data`` object returned by ``family``'s record-info endpoint for ``task_id``."""
        if family not in RECORD_INFO_PATHS:
            raise ValueError(f"unknown family {family!r}; expected one of {sorted(RECORD_INFO_PATHS)}")
        with self._lock:
            self._tasks[(RECORD_INFO_PATHS[family], task_id)] = response

    def download_link(self, name: str, ttl_seconds: float | None = None) -> str:
        """A signed link for a file name, as download-url would return it."""
        ttl = self.link_ttl_seconds if ttl_seconds is None else ttl_seconds
        expires = int(self.now() + ttl)
        return (
            f"{self.base_url}/dl/{urllib.parse.quote(name, safe='/')}"
            f"?expires={expires}&sig={self._signature(name, str(expires))}"
        )

    # -- internals used by the handler ------------------------------------------------------------

    def _track(self, sock: socket.socket, thread: threading.Thread) -> None:
        with self._lock:
            self._connections[sock] = thread

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.pop(sock, None)

    def _log_request(self, method: str, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append((method, path, headers))
            if len(self.requests) > REQUEST_LOG_LIMIT:
                del self.requests[: len(self.requests) - REQUEST_LOG_LIMIT]

    def _count_download_url(self, url: str) -> None:
        with self._lock:
            self.download_url_calls[url] += 1

    def _count_record_info(self, task_id: str) -> None:
        with self._lock:
            self.record_info_calls[task_id] += 1

    def _count_file_request(self, name: str) -> None:
        with self._lock:
            self.file_requests[name] += 1

    def _add_bytes_served(self, count: int) -> None:
        with self._lock:
            self.bytes_served += count

    def _signature(self, name: str, expires: str) -> str:
        return hmac.new(self._link_key, f"{name}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def _signature_ok(self, name: str, expires: str, sig: str) -> bool:
        if not expires.isdigit():
            return False
        return hmac.compare_digest(self._signature(name, expires), sig)

    def _link_for_result_url(self, url: str) -> str | None:
        with self._lock:
            name = self._result_urls.get(url)
        return None if name is None else self.download_link(name)

    def _served(self, name: str) -> _Served | None:
        with self._lock:
            return self._files.get(name)

    def _new_version(self, name: str) -> None:
        with self._lock:
            old = self._files.get(name)
            if old is None:
                return
            file = SyntheticFile(
                name,
                old.file.size,
                old.file.content_type,
                seed=old.file.seed + 1,
                served_content_type=old.file._served_content_type,
            )
            # Last-Modified has whole seconds: the new version's is later even within the same second.
            self._files[name] = _Served.of(file, max(self.now(), old.modified_at + 1))
            self._versions[name].append(file)

    def _task(self, path: str, task_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._tasks.get((path, task_id))

    def _admin_call(self, method: str, path: str, payload: dict[str, Any]) -> object:
        if (method, path) == ("POST", "/_emulator/files"):
            file = SyntheticFile(
                str(payload["name"]),
                int(payload["size"]),
                str(payload["contentType"]),
                seed=None if payload.get("seed") is None else int(payload["seed"]),
                served_content_type=payload.get("servedContentType"),
            )
            url = self.add_file(file, result_url=payload.get("resultUrl"))
            answer: dict[str, Any] = {"url": url, "name": file.name, "size": file.size}
            if payload.get("sha256"):
                answer["sha256"] = file.sha256_hex()
            return answer
        if (method, path) == ("POST", "/_emulator/tasks"):
            self.add_task(str(payload["family"]), str(payload["taskId"]), dict(payload["data"]))
            return None
        if (method, path) == ("POST", "/_emulator/faults/download-url"):
            self.inject_download_url(int(payload["code"]), int(payload.get("times", 1)), payload.get("url"))
            return None
        if (method, path) == ("POST", "/_emulator/faults/file"):
            fault = FileFault(
                kind=payload["kind"],
                status=int(payload.get("status", 0)),
                at_byte=int(payload.get("atByte", 0)),
                seconds=float(payload.get("seconds", 0.0)),
                content_type=str(payload.get("contentType", "")),
            )
            if fault.kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {fault.kind!r}")
            self.inject_file_fault(str(payload["name"]), fault, int(payload.get("times", 1)))
            return None
        if (method, path) == ("POST", "/_emulator/settings"):
            if "bandwidthLimitBps" in payload:
                bps = payload["bandwidthLimitBps"]
                self.bandwidth_limit_bps = None if bps is None else int(bps)
            if "clockOffset" in payload:
                self.set_clock_offset(float(payload["clockOffset"]))
            if "validators" in payload:
                self.validators = bool(payload["validators"])
            if "honourIfRange" in payload:
                self.honour_if_range = bool(payload["honourIfRange"])
            return None
        if (method, path) == ("GET", "/_emulator/stats"):
            with self._lock:
                return {
                    "downloadUrlCalls": dict(self.download_url_calls),
                    "recordInfoCalls": dict(self.record_info_calls),
                    "fileRequests": dict(self.file_requests),
                    "bytesServed": self.bytes_served,
                }
        return _NOT_FOUND


# --------------------------------------------------------------------------------------------------
# Command line


def _parse_file_spec(spec: str) -> SyntheticFile:
    name, size, content_type = spec.rsplit(":", 2)
    return SyntheticFile(name, int(size), content_type)


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until SIGTERM or SIGINT; print its base URL first."""
    parser = argparse.ArgumentParser(prog="python -m devstack.kie_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="test-kie-api-key")
    parser.add_argument("--link-ttl-seconds", type=int, default=1200)
    parser.add_argument("--bandwidth-limit-bps", type=int, default=None)
    parser.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="NAME:SIZE:CONTENT_TYPE",
        help="register a synthetic file (repeatable); its result URL is <base>/files/NAME",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    emulator = KieEmulator(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        link_ttl_seconds=args.link_ttl_seconds,
        bandwidth_limit_bps=args.bandwidth_limit_bps,
        verbose=args.verbose,
    )
    for spec in args.file:
        emulator.add_file(_parse_file_spec(spec))

    done = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with emulator:
        print(emulator.base_url, flush=True)
        while not done.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
