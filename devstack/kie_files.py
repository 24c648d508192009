"""The kie.ai emulator's files: synthetic bytes, and serving them over signed links with ranges."""

from __future__ import annotations

import email.utils
import hashlib
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from devstack.kie_faults import FileFault
from devstack.kie_http import HandlerBase

if TYPE_CHECKING:
    from devstack.kie_emulator import KieEmulator

BLOCK_SIZE: Final = 1 << 20
"""Bytes of a SyntheticFile are generated in independent blocks of this size."""
DEFAULT_CHUNK: Final = 256 << 10


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
# Served versions and ranges


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
# Serving links


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


def _xml_error(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()


class FileLinks(HandlerBase):
    """The file hosts' side of the emulator: signed, expiring /dl links with ranges and validators."""

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
