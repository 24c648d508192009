"""Downloads of source files over HTTP(S): one stream, or byte ranges on several connections.

Bytes are read in small chunks straight into the caller's buffers, so memory is whatever the
caller allocated (a few part buffers), never the file's size.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import urllib3

from kie2s3.adapters.kie_client import USER_AGENT
from kie2s3.errors import PermanentError, RetryableError, SourceRefusedError
from kie2s3.sources import public_url

_TIMEOUT = urllib3.Timeout(connect=5.0, read=30.0)
# Bytes asked of one read. urllib3 allocates and copies each chunk before it lands in the part
# buffer, so the per-read cost counts: 256 KiB reads took 0.25 s of CPU per GiB, 64 KiB ones 0.56 s.
# Bigger chunks gain little more and leave bigger blocks in each connection thread's malloc arena.
READ_CHUNK = 256 * 1024
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
_HEADERS = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}


class LinkExpiredError(RetryableError):
    """The download link answered 403: resolve a fresh one and try again."""


def _fill(response: urllib3.BaseHTTPResponse, into: memoryview, done: int = 0) -> int:
    """Read from the response until `into` is full or the body ends; the number of bytes in `into`."""
    while done < len(into):
        try:
            chunk = response.read(min(READ_CHUNK, len(into) - done))
        except urllib3.exceptions.HTTPError as exc:
            raise RetryableError(f"download interrupted after {done} bytes: {type(exc).__name__}") from exc
        if not chunk:
            break
        into[done : done + len(chunk)] = chunk
        done += len(chunk)
    return done


@dataclass
class SourceStream:
    """An open download: total size (when declared), type, Range support, and sequential fills."""

    response: urllib3.BaseHTTPResponse
    total_size: int | None
    content_type: str | None
    ranged: bool  # the server answered the first range with 206: more ranges can be fetched in parallel
    max_bytes: int
    bytes_read: int = 0

    def fill(self, into: memoryview) -> int:
        """The next bytes of the stream into `into` (full unless the stream ends); 0 at the end.

        RetryableError when the connection breaks or the body is shorter than declared;
        SourceRefusedError past MAX_FILE_BYTES.
        """
        got = _fill(self.response, into)
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
            raise RetryableError(f"cannot reach source {public_url(url)}: {type(exc).__name__}") from exc

    @contextmanager
    def open(self, url: str, *, max_bytes: int, first_part: int) -> Iterator[SourceStream]:
        """Open a download asking for its first `first_part` bytes as a range.

        A 206 answer means the rest can be fetched as ranges (`fetch_range`); a 200 answer is the
        whole body as one stream. The response is released whatever happens. Redirects are not
        followed.
        """
        response = self._get(url, {"Range": f"bytes=0-{first_part - 1}"})
        try:
            _check_status(response, url)
            total = _declared_total(response)
            if total is not None and total > max_bytes:
                raise SourceRefusedError(f"source declares {total} bytes, over MAX_FILE_BYTES ({max_bytes})")
            yield SourceStream(
                response, total, response.headers.get("Content-Type"), response.status == 206, max_bytes
            )
        finally:
            _release(response)

    def fetch_range(self, url: str, start: int, into: memoryview, total: int) -> None:
        """Fill `into` with the bytes from `start` (exactly len(into) of them) with one Range request."""
        end = start + len(into) - 1
        response = self._get(url, {"Range": f"bytes={start}-{end}"})
        try:
            _check_status(response, url)
            answered = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
            if (
                response.status != 206
                or not answered
                or answered.groups() != (str(start), str(end), str(total))
            ):
                raise RetryableError(
                    f"source answered range {start}-{end} with {response.status} and another range"
                )
            got = _fill(response, into)
            if got != len(into):
                raise RetryableError(f"range {start}-{end} ended after {got} of {len(into)} bytes")
        finally:
            _release(response)


def _declared_total(response: urllib3.BaseHTTPResponse) -> int | None:
    if response.status == 206:
        answered = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        if not answered or answered.group(1) != "0":
            raise RetryableError("source answered the first range with a malformed Content-Range")
        return int(answered.group(3))
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _release(response: urllib3.BaseHTTPResponse) -> None:
    # Closing drops a half-read body instead of draining what could be gigabytes.
    response.close()
    response.release_conn()


def _check_status(response: urllib3.BaseHTTPResponse, url: str) -> None:
    if response.status in (200, 206):
        return
    where = public_url(url)
    if response.status == 403:
        # An expired download-url link answers 403: a fresh link may work.
        raise LinkExpiredError(f"source {where} answered HTTP 403 (link expired or refused)")
    if response.status in (408, 425, 429) or response.status >= 500:
        raise RetryableError(f"source {where} answered HTTP {response.status}")
    raise PermanentError(f"source {where} answered HTTP {response.status}")
