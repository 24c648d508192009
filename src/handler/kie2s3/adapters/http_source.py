"""Downloads of source files over HTTP(S): one stream, or byte ranges on several connections.

Bytes are read straight into the caller's buffers, so memory is whatever the caller allocated (a
few part buffers), never the file's size; a body read to its end leaves its connection in the pool
for the next range.

A download opens with one GET for the first part as a range. Its answer decides the rest:
- 206 with a validator (a strong ETag, else Last-Modified; a weak ETag cannot be used with If-Range,
  RFC 9110 §13.1.5): the opening response's version is pinned. Every later range sends `If-Range`
  with it and must answer 206 with the same total, ETag and Last-Modified; anything else (200, the
  whole file of a newer version; another total or validator; 416) raises SourceChangedError, and
  the transfer copies the file from one plain GET (below) rather than store bytes of two versions.
- 206 without a usable validator, for part of the file: ranges could not be pinned, so that answer
  is dropped unread and the file read from one plain GET (one round trip more, for such sources
  only; a 206 that holds the whole file is read as it is). Asking for the whole file up front would
  save that round trip but cost every pinned download its opening connection, cut off mid-body.
- 200: the whole body as one stream.
- An empty source: 416 whose Content-Range is `bytes */0` (a range of an empty file cannot be
  satisfied), or a 206 or 200 declaring no bytes. It opens as a stream of 0 bytes.

A download can also open with one plain GET (no Range): the transfer's last resort for a source
whose versions changed between requests (transfer/run.py). It must answer 200: the whole file.
"""

import http.client
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import urllib3

from kie2s3.adapters.kie_client import USER_AGENT
from kie2s3.errors import (
    LinkExpiredError,
    PermanentError,
    RetryableError,
    SourceChangedError,
    SourceRefusedError,
)
from kie2s3.models import SourceVersion
from kie2s3.sources import canonical_url

_TIMEOUT = urllib3.Timeout(connect=5.0, read=30.0)
# Bytes asked of one read where the body cannot be read into the buffer directly: urllib3 allocates
# and copies each chunk before it lands in the part buffer, so fewer, larger reads cost less CPU per
# GiB; larger still leave bigger blocks in each connection thread's malloc arena.
READ_CHUNK = 256 * 1024
# What a broken or timed-out body raises: urllib3's errors, and http.client's and the socket's
# where the body is read through http.client directly.
_BODY_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
_EMPTY_RANGE = "bytes */0"  # the Content-Range of a 416 (or 206) answering a range of an empty file
_HEADERS = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}


def _direct(response: urllib3.BaseHTTPResponse) -> http.client.HTTPResponse | None:
    """The http.client response under urllib3's, whose `readinto` fills a buffer from the socket
    with no copy in between; None when the body must go through urllib3's `read`.

    Every body here is read with `decode_content=False` and only through `_fill`, so urllib3 holds
    none of it: what it would return is exactly what http.client reads (its framing, Content-Length
    or chunked, included). A body cut short before its Content-Length reads as its end: the callers
    compare what they got with what was declared.
    """
    raw = getattr(response, "_fp", None)
    return raw if isinstance(raw, http.client.HTTPResponse) else None


def _copying_reader(response: urllib3.BaseHTTPResponse) -> Callable[[memoryview], int]:
    def readinto(into: memoryview) -> int:
        chunk = response.read(min(READ_CHUNK, len(into)))
        into[: len(chunk)] = chunk
        return len(chunk)

    return readinto


def _fill(response: urllib3.BaseHTTPResponse, into: memoryview, done: int = 0) -> int:
    """Read from the response until `into` is full or the body ends; the number of bytes in `into`."""
    raw = _direct(response)
    readinto = raw.readinto if raw is not None else _copying_reader(response)
    while done < len(into):
        try:
            got = readinto(into[done:])
        except _BODY_ERRORS as exc:
            raise RetryableError(f"download interrupted after {done} bytes: {type(exc).__name__}") from exc
        if not got:
            break
        done += got
    if raw is not None and _read_to_its_end(raw):
        response.release_conn()  # as urllib3 does when it reads a body to its end: the next range may use it
    return done


def _read_to_its_end(raw: http.client.HTTPResponse) -> bool:
    """The whole body is read (a body cut short leaves part of its declared length)."""
    return raw.isclosed() and not raw.length


@dataclass
class SourceStream:
    """An open download: total size (when declared), type, pinned version, and sequential fills."""

    response: urllib3.BaseHTTPResponse
    total_size: int | None
    content_type: str | None
    # Set when the opening answered 206 with a validator: the rest may come as ranges pinned to it.
    version: SourceVersion | None
    max_bytes: int
    bytes_read: int = 0

    @property
    def ranged(self) -> bool:
        """Whether more ranges of this version can be fetched (in parallel) with `fetch_range`."""
        return self.version is not None

    def fill(self, into: memoryview) -> int:
        """The next bytes of the stream into `into` (full unless the stream ends); 0 at the end.

        Never reads past the declared size (an empty source's 416 carries an error page, not bytes).
        RetryableError when the connection breaks or the body is shorter than declared;
        SourceRefusedError past MAX_FILE_BYTES.
        """
        left = None if self.total_size is None else max(self.total_size - self.bytes_read, 0)
        got = _fill(self.response, into if left is None or left >= len(into) else into[:left])
        self.bytes_read += got
        if self.bytes_read > self.max_bytes:
            raise SourceRefusedError(f"source is larger than MAX_FILE_BYTES ({self.max_bytes})")
        short = got < len(into) and not self.ranged and self.total_size is not None
        if short and self.bytes_read != self.total_size:
            raise RetryableError(f"download ended at {self.bytes_read} of {self.total_size} bytes")
        return got


class HttpSource:
    """Opens source links with an explicit User-Agent (kie.ai's CDN refuses clients without one)."""

    def __init__(self, http: urllib3.PoolManager) -> None:
        self._http = http

    def _get(self, url: str, headers: dict[str, str]) -> urllib3.BaseHTTPResponse:
        try:
            return self._http.request(
                "GET",
                url,
                headers={**_HEADERS, **headers},
                preload_content=False,
                decode_content=False,
                redirect=False,
                timeout=_TIMEOUT,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise RetryableError(f"cannot reach source {canonical_url(url)}: {type(exc).__name__}") from exc

    def _plain_get(self, url: str) -> urllib3.BaseHTTPResponse:
        """One GET without Range, answered 200 with the whole file (released when it is not)."""
        response = self._get(url, {})
        try:
            _check_status(response, url)
            if response.status != 200:
                raise RetryableError(f"source answered a GET without Range with {response.status}")
        except BaseException:
            _release(response)
            raise
        return response

    @contextmanager
    def open(self, url: str, *, max_bytes: int, first_part: int | None) -> Iterator[SourceStream]:
        """Open a download asking for its first `first_part` bytes as a range (see the module's doc),
        or, when `first_part` is None, with one plain GET: the whole file as one stream, never ranges
        (what one answer holds is one version, whatever the origin does between requests).

        When the stream has a `version`, the rest can be fetched as ranges pinned to it
        (`fetch_range`); otherwise the stream is the whole file. The response is released whatever
        happens. Redirects are not followed.
        """
        if first_part is None:
            response = self._plain_get(url)
        else:
            response = self._get(url, {"Range": f"bytes=0-{first_part - 1}"})
        try:
            if _answers_empty(response):
                yield SourceStream(response, 0, None, None, max_bytes)  # its body is no file's bytes
                return
            _check_status(response, url)
            total, whole = _declared(response)
            version = _version(response, total) if response.status == 206 else None
            if response.status == 206 and version is None and not whole:
                _release(response)  # unread: the file comes from one GET that cannot mix versions
                response = self._plain_get(url)
                total, _ = _declared(response)
            if total is not None and total > max_bytes:
                raise SourceRefusedError(f"source declares {total} bytes, over MAX_FILE_BYTES ({max_bytes})")
            yield SourceStream(response, total, response.headers.get("Content-Type"), version, max_bytes)
        finally:
            _release(response)

    def fetch_range(self, url: str, start: int, into: memoryview, version: SourceVersion) -> None:
        """Fill `into` with the bytes from `start` (exactly len(into) of them) of `version`, with one
        Range request carrying If-Range. SourceChangedError when the answer is of another version."""
        end = start + len(into) - 1
        response = self._get(url, {"Range": f"bytes={start}-{end}", "If-Range": version.if_range})
        try:
            if response.status != 416:  # the declared range gone is a change of version, not a refusal
                _check_status(response, url)
            _check_version(response, version, start, end)
            got = _fill(response, into)
            if got != len(into):
                raise RetryableError(f"range {start}-{end} ended after {got} of {len(into)} bytes")
        finally:
            _release(response)


def _check_version(response: urllib3.BaseHTTPResponse, version: SourceVersion, start: int, end: int) -> None:
    """Raise unless the answer to a pinned range is that range of `version` (SourceChangedError when
    it is of another version: 200 or 416 instead of 206, another total, ETag or Last-Modified)."""
    changed = f"source changed since the download began: range {start}-{end}"
    if response.status != 206:  # If-Range did not match: 200 with the whole file as it is now
        raise SourceChangedError(f"{changed} answered {response.status}")
    answered = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
    if answered and int(answered.group(3)) != version.total:
        raise SourceChangedError(f"{changed} is of {answered.group(3)} bytes, not {version.total}")
    validators = (response.headers.get("ETag"), response.headers.get("Last-Modified"))
    if validators != (version.etag, version.last_modified):
        raise SourceChangedError(f"{changed} has another ETag or Last-Modified")
    if not answered or answered.groups()[:2] != (str(start), str(end)):
        raise RetryableError(f"source answered range {start}-{end} with another range")


def _answers_empty(response: urllib3.BaseHTTPResponse) -> bool:
    """Whether the answer to the opening range says the source has no bytes at all."""
    content_range = response.headers.get("Content-Range")
    if response.status == 416:
        return content_range == _EMPTY_RANGE
    if response.status == 206:
        return content_range == _EMPTY_RANGE or (
            content_range is None and response.headers.get("Content-Length") == "0"
        )
    return False


def _declared(response: urllib3.BaseHTTPResponse) -> tuple[int | None, bool]:
    """The file's total size (None when undeclared), and whether this response holds all of it."""
    if response.status == 206:
        answered = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        if not answered or answered.group(1) != "0":
            raise RetryableError("source answered the first range with a malformed Content-Range")
        total = int(answered.group(3))
        return total, int(answered.group(2)) + 1 >= total
    length = response.headers.get("Content-Length")
    return (int(length) if length and length.isdigit() else None), True


def _version(response: urllib3.BaseHTTPResponse, total: int | None) -> SourceVersion | None:
    """The version to pin later ranges to, or None when the response has no validator If-Range can use."""
    etag = response.headers.get("ETag")
    last_modified = response.headers.get("Last-Modified")
    strong = etag if etag and not etag.startswith("W/") else None
    if_range = strong or last_modified
    if total is None or not if_range:
        return None
    return SourceVersion(total, if_range, etag, last_modified)


def _release(response: urllib3.BaseHTTPResponse) -> None:
    """Give the connection back to the pool when its body was read to the end (the next range
    reuses it: no new TCP and TLS handshake); else close it, which drops a half-read body instead
    of draining what could be gigabytes."""
    raw = _direct(response)
    if raw is None or not _read_to_its_end(raw):
        response.close()
    response.release_conn()


def _check_status(response: urllib3.BaseHTTPResponse, url: str) -> None:
    if response.status in (200, 206):
        return
    where = canonical_url(url)
    if response.status == 403:
        # An expired download-url link answers 403: a fresh link may work.
        raise LinkExpiredError(f"source {where} answered HTTP 403 (link expired or refused)")
    if response.status in (408, 425, 429) or response.status >= 500:
        raise RetryableError(f"source {where} answered HTTP {response.status}")
    raise PermanentError(f"source {where} answered HTTP {response.status}")
