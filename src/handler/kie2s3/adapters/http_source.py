"""Streaming downloads of source files over HTTP(S), read part by part, never buffered whole."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import urllib3

from kie2s3.adapters.kie_client import USER_AGENT
from kie2s3.errors import PermanentError, RetryableError, SourceRefusedError
from kie2s3.sources import public_url

_TIMEOUT = urllib3.Timeout(connect=5.0, read=30.0)


@dataclass
class SourceStream:
    """An open download: its declared size and type, and reads of up to `n` bytes until it ends."""

    response: urllib3.BaseHTTPResponse
    content_length: int | None
    content_type: str | None
    max_bytes: int
    bytes_read: int = 0

    def read(self, n: int) -> bytes:
        """Up to n bytes (fewer only at the end); RetryableError when the connection breaks or lies."""
        try:
            chunk = self.response.read(n)
        except urllib3.exceptions.HTTPError as exc:
            raise RetryableError(
                f"download interrupted after {self.bytes_read} bytes: {type(exc).__name__}"
            ) from exc
        self.bytes_read += len(chunk)
        if self.bytes_read > self.max_bytes:
            raise SourceRefusedError(f"source is larger than MAX_FILE_BYTES ({self.max_bytes})")
        if not chunk and self.content_length is not None and self.bytes_read != self.content_length:
            raise RetryableError(f"download ended at {self.bytes_read} of {self.content_length} bytes")
        return chunk


class HttpSource:
    """Opens source links with an explicit User-Agent (kie.ai's CDN refuses clients without one)."""

    def __init__(self, http: urllib3.PoolManager) -> None:
        self._http = http

    @contextmanager
    def open(self, url: str, *, max_bytes: int) -> Iterator[SourceStream]:
        """Open a download; the response is released whatever happens. Redirects are not followed."""
        try:
            response = self._http.request(
                "GET",
                url,
                headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
                preload_content=False,
                decode_content=False,
                redirect=False,
                timeout=_TIMEOUT,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise RetryableError(f"cannot reach source {public_url(url)}: {type(exc).__name__}") from exc
        try:
            _check_status(response, url)
            length_header = response.headers.get("Content-Length")
            length = int(length_header) if length_header and length_header.isdigit() else None
            if length is not None and length > max_bytes:
                raise SourceRefusedError(f"source declares {length} bytes, over MAX_FILE_BYTES ({max_bytes})")
            yield SourceStream(response, length, response.headers.get("Content-Type"), max_bytes)
        finally:
            # Closing drops a half-read body instead of draining what could be gigabytes.
            response.close()
            response.release_conn()


def _check_status(response: urllib3.BaseHTTPResponse, url: str) -> None:
    if response.status == 200:
        return
    where = public_url(url)
    if response.status in (408, 425, 429) or response.status >= 500:
        raise RetryableError(f"source {where} answered HTTP {response.status}")
    if response.status == 403:
        # An expired download-url link answers 403: a fresh link on the next try may work.
        raise RetryableError(f"source {where} answered HTTP 403 (link expired or refused)")
    raise PermanentError(f"source {where} answered HTTP {response.status}")
