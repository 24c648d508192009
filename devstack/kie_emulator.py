"""A kie.ai emulator: a loopback HTTP server speaking kie.ai's wire format, with injectable faults."""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import email.utils
import hashlib
import hmac
import json
import secrets
import signal
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Final, Literal, Self, cast, get_args

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK_SIZE: Final = 1 << 20
"""Bytes of a SyntheticFile are generated in independent blocks of this size."""
DEFAULT_CHUNK: Final = 256 << 10
REQUEST_LOG_LIMIT: Final = 1000

RECORD_INFO_PATHS: Final[dict[str, str]] = {
    "market": "/api/v1/jobs/recordInfo",
    "veo": "/api/v1/veo/record-info",
    "veo4k": "/api/v1/veo/record-info",
    "suno": "/api/v1/generate/record-info",
    "suno_wav": "/api/v1/wav/record-info",
    "suno_mp4": "/api/v1/mp4/record-info",
    "suno_midi": "/api/v1/midi/record-info",
    "suno_voice": "/api/v1/voice/record-info",
    "suno_vocal_separation": "/api/v1/vocal-removal/record-info",
    "suno_cover": "/api/v1/suno/cover/record-info",
    "gpt4o": "/api/v1/gpt4o-image/record-info",
    "flux_kontext": "/api/v1/flux/kontext/record-info",
    "runway": "/api/v1/runway/record-detail",
    "runway_aleph": "/api/v1/aleph/record-info",
    "luma": "/api/v1/modify/record-info",
    "midjourney": "/api/v1/mj/record-info",
}
"""Record-info endpoint per API family (kie-api.md §5)."""

DOWNLOAD_URL_PATH: Final = "/api/v1/common/download-url"

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


# --------------------------------------------------------------------------------------------------
# Synthetic files


def _png_prefix() -> bytes:
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 64, 64, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))


def _riff_size(size: int) -> bytes:
    return struct.pack("<I", max(0, min(size - 8, 0xFFFFFFFF)))


def _magic_prefix(content_type: str, size: int) -> bytes:
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype == "image/png":
        return _png_prefix()
    if ctype in ("image/jpeg", "image/jpg"):
        return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    if ctype == "video/mp4":
        return b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    if ctype in ("audio/mpeg", "audio/mp3"):
        return b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x64"
    if ctype in ("audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"):
        fmt = struct.pack("<IHHIIHH", 16, 1, 2, 44100, 44100 * 4, 4, 16)
        data_len = struct.pack("<I", max(0, min(size - 44, 0xFFFFFFFF)))
        return b"RIFF" + _riff_size(size) + b"WAVEfmt " + fmt + b"data" + data_len
    if ctype == "image/webp":
        return b"RIFF" + _riff_size(size) + b"WEBPVP8 "
    return b""


_ZEROS: Final = memoryview(bytes(BLOCK_SIZE))
"""The plaintext of every keystream block (shared: a fresh 1 MiB of zeros costs more than the cipher)."""


class _Keystream:
    """Pseudo-random bytes of any block, fast: the AES-128-CTR keystream of a key derived from the seed.

    About 5 GB/s with AES-NI (SHAKE-128 managed 0.3 GB/s), so the emulator, which shares the machine's
    cores with moto and the copy under test, costs the copy almost nothing, as a remote origin would.
    """

    def __init__(self, seed: int) -> None:
        self._key = hashlib.sha256(seed.to_bytes(32, "big", signed=True)).digest()[:16]

    def block(self, index: int, length: int) -> bytes:
        """The `length` bytes of block `index`: the keystream from counter index x BLOCK_SIZE / 16."""
        counter = (index * (BLOCK_SIZE // 16)).to_bytes(16, "big")
        encryptor = Cipher(algorithms.AES(self._key), modes.CTR(counter)).encryptor()
        return encryptor.update(_ZEROS[:length])


def _seed_from_name(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


class SyntheticFile:
    """A file whose bytes are generated deterministically, block by block, and never held whole.

    The first bytes are a real magic prefix for ``content_type`` (so content sniffing works); the rest
    is pseudo-random data produced in independent ``BLOCK_SIZE`` blocks, so any byte range can be
    produced without generating the bytes before it.
    """

    def __init__(
        self,
        name: str,
        size: int,
        content_type: str,
        seed: int | None = None,
        served_content_type: str | None = None,
    ) -> None:
        if not name or name.startswith("/") or "?" in name or "#" in name:
            raise ValueError(f"invalid file name {name!r}")
        if size < 0:
            raise ValueError("size must be >= 0")
        self.name = name
        self.size = size
        self.content_type = content_type
        self.seed = _seed_from_name(name) if seed is None else seed
        self._served_content_type = served_content_type
        self._prefix = _magic_prefix(content_type, size)[:size]
        self._sha256: str | None = None
        self._sha_lock = threading.Lock()
        self._cached_block: tuple[int, bytes] | None = None
        self._keystream = _Keystream(self.seed)

    def __repr__(self) -> str:
        return f"SyntheticFile({self.name!r}, size={self.size}, content_type={self.content_type!r})"

    @property
    def served_content_type(self) -> str:
        """The Content-Type header the emulator sends for this file (defaults to ``content_type``)."""
        return self._served_content_type or self.content_type

    @property
    def prefix(self) -> bytes:
        """The magic prefix the file starts with (possibly truncated to ``size``)."""
        return self._prefix

    def _make_block(self, index: int) -> bytes:
        start = index * BLOCK_SIZE
        length = min(BLOCK_SIZE, self.size - start)
        if length <= 0:
            return b""
        data = self._keystream.block(index, length)
        if index == 0 and self._prefix:
            data = self._prefix + data[len(self._prefix) :]
        return data

    def _block(self, index: int) -> bytes:
        cached = self._cached_block
        if cached is not None and cached[0] == index:
            return cached[1]
        data = self._make_block(index)
        self._cached_block = (index, data)
        return data

    def read(self, offset: int, length: int) -> bytes:
        """Return up to ``length`` bytes starting at ``offset`` (fewer at the end of the file)."""
        if offset < 0 or length < 0:
            raise ValueError("offset and length must be >= 0")
        end = min(self.size, offset + length)
        parts: list[bytes] = []
        pos = offset
        while pos < end:
            index, within = divmod(pos, BLOCK_SIZE)
            take = min(BLOCK_SIZE - within, end - pos)
            parts.append(self._block(index)[within : within + take])
            pos += take
        return b"".join(parts)

    def iter_bytes(
        self, start: int = 0, end: int | None = None, chunk: int = DEFAULT_CHUNK
    ) -> Iterator[bytes]:
        """Yield the bytes ``[start, end)`` in pieces of at most ``chunk`` bytes."""
        stop = self.size if end is None else min(end, self.size)
        if start < 0 or chunk <= 0:
            raise ValueError("start must be >= 0 and chunk > 0")
        pos = start
        while pos < stop:
            index, within = divmod(pos, BLOCK_SIZE)
            block = self._make_block(index)
            block_stop = min(len(block), stop - index * BLOCK_SIZE)
            while within < block_stop:
                take = min(chunk, block_stop - within)
                yield block[within : within + take]
                within += take
            pos = index * BLOCK_SIZE + block_stop
            del block

    def sha256_hex(self) -> str:
        """SHA-256 of the whole file, computed by streaming once and cached."""
        with self._sha_lock:
            if self._sha256 is None:
                digest = hashlib.sha256()
                for index in range((self.size + BLOCK_SIZE - 1) // BLOCK_SIZE):
                    digest.update(self._make_block(index))
                self._sha256 = digest.hexdigest()
            return self._sha256


# --------------------------------------------------------------------------------------------------
# Faults

FaultKind = Literal["http_status", "truncate", "stall", "reset", "wrong_content_type", "new_version"]
FAULT_KINDS: Final = frozenset(get_args(FaultKind))


@dataclass(frozen=True, slots=True)
class FileFault:
    """A fault applied to one GET of a download link (byte offsets are relative to the response body)."""

    kind: FaultKind
    status: int = 0
    at_byte: int = 0
    seconds: float = 0.0
    content_type: str = ""

    @classmethod
    def http_status(cls, status: int) -> FileFault:
        """Answer ``status`` with a short error body instead of the file."""
        return cls("http_status", status=status)

    @classmethod
    def truncate(cls, at_byte: int) -> FileFault:
        """Send the full Content-Length header, then close the connection after ``at_byte`` body bytes."""
        return cls("truncate", at_byte=at_byte)

    @classmethod
    def stall(cls, after_byte: int, seconds: float) -> FileFault:
        """Stop sending for ``seconds`` after ``after_byte`` body bytes, then carry on."""
        return cls("stall", at_byte=after_byte, seconds=seconds)

    @classmethod
    def reset(cls) -> FileFault:
        """Close the socket (TCP RST) without any response."""
        return cls("reset")

    @classmethod
    def wrong_content_type(cls, content_type: str) -> FileFault:
        """Serve the file with this Content-Type header."""
        return cls("wrong_content_type", content_type=content_type)

    @classmethod
    def new_version(cls) -> FileFault:
        """Answer this GET from the file as it is, then overwrite the file with a new version (other
        bytes of the same size and type, another ETag, a later Last-Modified), as when the origin's
        file is replaced between two requests of one download."""
        return cls("new_version")


@dataclass(slots=True)
class _EnvelopeFault:
    code: int
    remaining: int
    key: str | None


@dataclass(slots=True)
class _SlowAnswer:
    seconds: float
    remaining: int
    key: str | None


@dataclass(slots=True)
class _PendingFileFault:
    fault: FileFault
    remaining: int


@dataclass(frozen=True, slots=True)
class _Served:
    file: SyntheticFile
    modified_at: float
    etag: str

    @classmethod
    def of(cls, file: SyntheticFile, modified_at: float) -> _Served:
        etag_src = f"{file.name}\0{file.size}\0{file.seed}\0{file.content_type}".encode()
        etag = '"' + hashlib.md5(etag_src, usedforsecurity=False).hexdigest() + '"'
        return cls(file=file, modified_at=float(int(modified_at)), etag=etag)

    @property
    def last_modified(self) -> str:
        return email.utils.formatdate(self.modified_at, usegmt=True)

    def if_range_matches(self, value: str) -> bool:
        """RFC 9110 §13.1.5: an entity tag matches by strong comparison (a weak one never does),
        a date only when it is exactly the Last-Modified."""
        value = value.strip()
        if value.startswith(("W/", '"')):
            return not value.startswith("W/") and value == self.etag
        return value == self.last_modified


class _RangeNotSatisfiableError(Exception):
    pass


def _parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """Return ``(start, end_exclusive)`` for a single byte range, None to serve the whole file."""
    bounds = _range_bounds(value)
    if bounds is None:
        return None
    first, last = bounds
    if first is None:
        assert last is not None  # a range names at least one bound
        return _suffix_range(last, size)
    if last is not None and last < first:
        return None
    if first >= size:
        raise _RangeNotSatisfiableError
    return first, size if last is None else min(size, last + 1)


def _range_bounds(value: str | None) -> tuple[int | None, int | None] | None:
    """The first and last byte positions of a single `bytes=` range (either may be absent, not both);
    None when there is no Range, or one this server ignores (another unit, several ranges, bad syntax)."""
    if not value:
        return None
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = (part.strip() for part in spec.strip().partition("-"))
    if not dash or not (first or last) or not all(p.isdigit() for p in (first, last) if p):
        return None
    return (int(first) if first else None), (int(last) if last else None)


def _suffix_range(length: int, size: int) -> tuple[int, int]:
    """`bytes=-N`: the last N bytes (the whole file when it is shorter); none of an empty file."""
    if length == 0 or size == 0:
        raise _RangeNotSatisfiableError
    return max(0, size - length), size


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


class _PacedWriter:
    """Writes a response body at most at the emulator's bandwidth limit (None: as fast as it goes),
    counting the bytes served; a write answers False when the emulator stopped while it waited."""

    def __init__(self, wfile: Any, emulator: KieEmulator) -> None:
        self._wfile = wfile
        self._emulator = emulator
        self._bps = emulator.bandwidth_limit_bps
        self.chunk = DEFAULT_CHUNK if not self._bps else max(1024, min(DEFAULT_CHUNK, self._bps // 20))
        self.sent = 0
        self._began = time.monotonic()

    def write(self, data: bytes) -> bool:
        if self._bps:
            delay = self._began + self.sent / self._bps - time.monotonic()
            if delay > 0 and self._emulator._stopping.wait(delay):
                return False
        self._wfile.write(data)
        self.sent += len(data)
        self._emulator._add_bytes_served(len(data))
        return True

    def stall(self, piece: bytes, at_byte: int, seconds: float) -> bytes | None:
        """Write `piece` up to the body's byte `at_byte`, flush and wait `seconds`: the rest of the
        piece, or None when the emulator stopped meanwhile."""
        head, rest = piece[: at_byte - self.sent], piece[at_byte - self.sent :]
        if head and not self.write(head):
            return None
        self._wfile.flush()
        if self._emulator._stopping.wait(seconds):
            return None
        return rest


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


def _xml_error(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "kie-emulator/1.0"
    sys_version = ""

    @property
    def emulator(self) -> KieEmulator:
        return cast(_Server, self.server).emulator

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

    def _download_url(self, body: bytes) -> None:
        emu = self.emulator
        url: str | None = None
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("url"), str):
            url = payload["url"]
        emu._count_download_url(url or "")
        injected = emu._take_envelope_fault(emu._download_url_faults, url)
        if injected is not None:
            self._envelope(injected)
        elif not self._authorized():
            self._envelope(401)
        elif payload is None:
            self._envelope(422, "Request body must be JSON")
        elif url is None or not url:
            self._envelope(422, "url is required")
        else:
            link = emu._link_for_result_url(url)
            if link is None:
                self._envelope(422)
            else:
                self._envelope(200, "success", link)

    def _record_info(self, path: str, query: dict[str, list[str]]) -> None:
        emu = self.emulator
        task_id = (query.get("taskId") or [""])[0]
        emu._count_record_info(task_id)
        if (seconds := emu._take_slow_answer(task_id)) and emu._stopping.wait(seconds):
            return
        injected = emu._take_envelope_fault(emu._record_info_faults, task_id)
        if injected is not None:
            self._envelope(injected)
        elif not self._authorized():
            self._envelope(401)
        elif not task_id:
            self._envelope(422, "taskId is required")
        else:
            data = emu._task(path, task_id)
            if data is None:
                self._envelope(422, "recordInfo is null")
            else:
                self._envelope(200, "success", data)

    # -- file links -------------------------------------------------------------------------------

    def _serve_link(self, method: str, name: str, query: dict[str, list[str]]) -> None:
        emu = self.emulator
        head_only = method == "HEAD"
        if method == "GET":
            emu._count_file_request(name)
        served = self._linked_file(name, query, head_only)
        if served is None:
            return
        fault = emu._take_file_fault(name) if method == "GET" else None
        if fault is not None and self._answer_instead(fault, name, head_only):
            return
        common = self._validator_headers(served)
        try:
            byte_range = _parse_range(self._range_asked(served), served.file.size)
        except _RangeNotSatisfiableError:
            range_header = {"Content-Range": f"bytes */{served.file.size}"}
            self._send(416, b"", "application/xml", head_only, {**common, **range_header})
            return
        content_type = served.file.served_content_type
        if fault is not None and fault.kind == "wrong_content_type":
            content_type = fault.content_type
        start, end = byte_range if byte_range is not None else (0, served.file.size)
        self._send_file_headers(served, content_type, (start, end) if byte_range else None, common)
        if not head_only:
            self._stream(served.file, start, end, fault)

    def _linked_file(self, name: str, query: dict[str, list[str]], head_only: bool) -> _Served | None:
        """The file a link names when its signature holds and it has not expired; else S3's error
        (403 or 404, an XML body) is sent and None returned."""
        emu = self.emulator
        expires = (query.get("expires") or [""])[0]
        sig = (query.get("sig") or [""])[0]
        if not emu._signature_ok(name, expires, sig):
            msg = "The request signature we calculated does not match the signature you provided."
            error = 403, _xml_error("SignatureDoesNotMatch", msg)
        elif emu.now() > int(expires):
            error = 403, _xml_error("AccessDenied", "Request has expired")
        elif (served := emu._served(name)) is None:
            error = 404, _xml_error("NoSuchKey", "The specified key does not exist.")
        else:
            return served
        self._send(*error, "application/xml", head_only)
        return None

    def _answer_instead(self, fault: FileFault, name: str, head_only: bool) -> bool:
        """Apply a fault that comes before the file's headers: True when it answered (a reset, an
        error status), so the file is not served. A new version is made, and this answer still
        comes from the old one; later ones from the new one."""
        if fault.kind == "new_version":
            self.emulator._new_version(name)
        if fault.kind == "reset":
            self._reset()
            return True
        if fault.kind == "http_status":
            text = f"{fault.status} {self.responses.get(fault.status, ('Error',))[0]}".encode()
            self._send(fault.status, text, "text/plain; charset=utf-8", head_only)
            return True
        return False

    def _validator_headers(self, served: _Served) -> dict[str, str]:
        """Accept-Ranges, ETag and Last-Modified, as the emulator's settings have them."""
        emu = self.emulator
        common = {"ETag": served.etag, "Last-Modified": served.last_modified} if emu.validators else {}
        return {"Accept-Ranges": "bytes", **common} if emu.accept_ranges else common

    def _range_asked(self, served: _Served) -> str | None:
        """The Range to honour: none when ranges are off, or when If-Range names another version than
        the one served (then the whole file comes, with 200)."""
        emu = self.emulator
        if not emu.accept_ranges:
            return None
        if_range = self.headers.get("If-Range") if emu.honour_if_range else None
        if if_range is not None and not (emu.validators and served.if_range_matches(if_range)):
            return None
        return self.headers.get("Range")

    def _send_file_headers(
        self, served: _Served, content_type: str, byte_range: tuple[int, int] | None, common: dict[str, str]
    ) -> None:
        """200 for the whole file, 206 with Content-Range for `byte_range` (start, end exclusive)."""
        start, end = byte_range if byte_range is not None else (0, served.file.size)
        self.send_response(206 if byte_range is not None else 200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(end - start))
        if byte_range is not None:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{served.file.size}")
        for header, value in common.items():
            self.send_header(header, value)
        self.end_headers()
        self._headers_sent = True

    def _reset(self) -> None:
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()  # the descriptor closes (with RST) once the handler's files close
        except OSError:
            pass

    def _stream(self, file: SyntheticFile, start: int, end: int, fault: FileFault | None) -> None:
        """The body's bytes, paced to the bandwidth limit; a `truncate` fault closes the connection at
        its byte, a `stall` one pauses there. The connection closes when the emulator stops."""
        writer = _PacedWriter(self.wfile, self.emulator)
        cut = fault.at_byte if fault is not None and fault.kind == "truncate" else None
        stall = fault if fault is not None and fault.kind == "stall" else None
        for piece in file.iter_bytes(start, end, writer.chunk):
            if cut is not None and writer.sent + len(piece) >= cut:
                if cut > writer.sent:
                    writer.write(piece[: cut - writer.sent])
                self.wfile.flush()
                self.close_connection = True
                return
            if stall is not None and writer.sent + len(piece) > stall.at_byte:
                rest = writer.stall(piece, stall.at_byte, stall.seconds)
                stall = None
                if rest is None:
                    break
                piece = rest
            if not writer.write(piece):
                break
        else:
            return
        self.close_connection = True  # stopped while streaming

    # -- admin API (for the emulator run as a separate process) -----------------------------------

    def _admin(self, method: str, path: str, body: bytes) -> None:
        emu = self.emulator
        if not self._authorized():
            self._send_json(401, {"code": 401, "msg": ENVELOPE_MESSAGES[401], "data": None})
            return
        try:
            payload = json.loads(body) if body else {}
            if not isinstance(payload, dict):
                raise TypeError("body must be a JSON object")
            result = emu._admin_call(method, path, payload)
        except (ValueError, TypeError, KeyError) as exc:
            self._send_json(400, {"code": 400, "msg": f"{type(exc).__name__}: {exc}", "data": None})
            return
        if result is _NOT_FOUND:
            self._send_json(404, {"code": 404, "msg": f"No endpoint {method} {path}", "data": None})
        else:
            self._send_json(200, {"code": 200, "msg": "success", "data": result})


_NOT_FOUND: Final = object()


class KieEmulator:
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

    # -- faults -----------------------------------------------------------------------------------

    def inject_download_url(self, code: int, times: int = 1, url: str | None = None) -> None:
        """Answer the next ``times`` download-url calls (for ``url``, or any) with envelope ``code``."""
        with self._lock:
            self._download_url_faults.append(_EnvelopeFault(code, times, url))

    def inject_record_info(self, code: int, times: int = 1, task_id: str | None = None) -> None:
        """Answer the next ``times`` record-info calls (for ``task_id``, or any) with envelope ``code``."""
        with self._lock:
            self._record_info_faults.append(_EnvelopeFault(code, times, task_id))

    def delay_record_info(self, seconds: float, times: int = 1, task_id: str | None = None) -> None:
        """Answer the next ``times`` record-info calls (for ``task_id``, or any) ``seconds`` late,
        the headers included, as a slow kie.ai does (an injected envelope code still applies after)."""
        with self._lock:
            self._record_info_delays.append(_SlowAnswer(seconds, times, task_id))

    def inject_file_fault(self, name: str, fault: FileFault, times: int = 1) -> None:
        """Apply ``fault`` to the next ``times`` GETs of the download link of file ``name``."""
        with self._lock:
            self._file_faults.setdefault(name, []).append(_PendingFileFault(fault, times))

    def clear_faults(self) -> None:
        """Drop every pending injected fault."""
        with self._lock:
            self._download_url_faults.clear()
            self._record_info_faults.clear()
            self._record_info_delays.clear()
            self._file_faults.clear()

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

    def _take_envelope_fault(self, faults: list[_EnvelopeFault], key: str | None) -> int | None:
        with self._lock:
            for fault in faults:
                if fault.key is None or fault.key == key:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        faults.remove(fault)
                    return fault.code
        return None

    def _take_slow_answer(self, key: str) -> float:
        with self._lock:
            for delay in self._record_info_delays:
                if delay.key is None or delay.key == key:
                    delay.remaining -= 1
                    if delay.remaining <= 0:
                        self._record_info_delays.remove(delay)
                    return delay.seconds
        return 0.0

    def _take_file_fault(self, name: str) -> FileFault | None:
        with self._lock:
            pending = self._file_faults.get(name)
            if not pending:
                return None
            first = pending[0]
            first.remaining -= 1
            if first.remaining <= 0:
                pending.pop(0)
            return first.fault

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
