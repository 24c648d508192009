"""The copy pipeline: parts flow from the source into S3 through a fixed set of reusable buffers.

Download and upload overlap: several parts are in flight at once, each in its own buffer. When the
source honours Range requests, the parts are fetched on several connections in parallel (a
throttled origin is then no slower than its per-connection limit times the connection count);
otherwise one stream fills the buffers in order. The whole-file SHA-256 is computed in order
as parts arrive. Memory is `buffers x part size`, whatever the file size.
"""

import hashlib
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kie2s3.adapters.http_source import HttpSource, LinkExpiredError, SourceStream
from kie2s3.adapters.s3_store import MultipartUpload
from kie2s3.errors import RetryableError
from kie2s3.observability import logger

# A long copy logs its progress at most this often.
PROGRESS_EVERY_SECONDS = 10.0
# A range that fails (reset, truncated, expired link) is fetched again this many times.
RANGE_ATTEMPTS = 3


@dataclass(frozen=True)
class PipelineShape:
    """How wide the pipeline is: part size, buffers, connections."""

    part_bytes: int
    buffers: int  # every part in flight holds one: memory is buffers x part_bytes
    connections: int  # parallel range downloads
    uploads: int  # parallel UploadPart calls


class _Part:
    """A part's buffer and the two things that must happen before the buffer is free again."""

    def __init__(self, number: int, buffer: bytearray, size: int) -> None:
        self.number = number
        self.buffer = buffer
        self.view = memoryview(buffer)[:size]
        self.filled = threading.Event()
        self._pending = 2  # hashed (in order, by the caller) and uploaded (by a worker)
        self._lock = threading.Lock()

    def done_with(self, pool: "queue.Queue[bytearray]") -> None:
        with self._lock:
            self._pending -= 1
            free = self._pending == 0
        if free:
            self.view.release()
            pool.put(self.buffer)


class Pipeline:
    """Moves one source into one multipart upload; `run` returns (bytes, whole-file sha256)."""

    def __init__(
        self,
        shape: PipelineShape,
        upload: MultipartUpload,
        *,
        first: bytearray,
        first_size: int,
        label: dict[str, Any],
    ) -> None:
        self._shape = shape
        self._upload = upload
        self._pool: queue.Queue[bytearray] = queue.Queue()
        for _ in range(shape.buffers - 1):
            self._pool.put(bytearray(shape.part_bytes))
        self._first = _Part(1, first, first_size)
        self._first.filled.set()
        self._label = label
        self._whole = hashlib.sha256()
        self._bytes = 0
        self._progress_at = time.monotonic() + PROGRESS_EVERY_SECONDS

    def _upload_part(self, part: _Part) -> None:
        try:
            self._upload.upload_part(part.number, part.view, hashlib.sha256(part.view).digest())
        finally:
            part.done_with(self._pool)

    def _hash(self, part: _Part) -> None:
        self._whole.update(part.view)
        self._bytes += len(part.view)
        part.done_with(self._pool)
        if time.monotonic() >= self._progress_at:
            self._progress_at = time.monotonic() + PROGRESS_EVERY_SECONDS
            logger.info("copy progress", bytes=self._bytes, parts=self._upload.parts_done, **self._label)

    def run_stream(self, stream: SourceStream) -> tuple[int, str]:
        """One connection: the caller's thread fills buffers in order, workers upload them."""
        with ThreadPoolExecutor(self._shape.uploads, thread_name_prefix="part") as workers:
            uploads: list[Future[None]] = []
            part = self._first
            while True:
                uploads.append(workers.submit(self._upload_part, part))
                self._hash(part)
                _raise_first_failure(uploads)
                buffer = self._pool.get()  # blocks while every buffer is in flight: memory stays bounded
                size = stream.fill(memoryview(buffer))
                if size == 0:
                    self._pool.put(buffer)
                    break
                part = _Part(part.number + 1, buffer, size)
            for future in uploads:
                future.result()
        return self._bytes, self._whole.hexdigest()

    def run_ranges(self, source: HttpSource, link: Callable[[bool], str], total: int) -> tuple[int, str]:
        """Several connections fetch consecutive ranges into buffers; other threads upload them.

        Fetching and uploading run on separate threads, so a connection starts its next range
        while S3 takes the last one. Buffers are taken in part order, so the lowest part not yet
        hashed always has one: the in-order hashing never waits on a buffer held by a later part.
        """
        size = self._shape.part_bytes
        count = -(-total // size)
        parts: dict[int, _Part] = {1: self._first}
        with (
            ThreadPoolExecutor(self._shape.connections, thread_name_prefix="range") as fetchers,
            ThreadPoolExecutor(self._shape.uploads, thread_name_prefix="part") as uploaders,
        ):
            futures: list[Future[None]] = []
            next_number = 2
            for number in range(1, count + 1):
                while next_number <= count and (next_number == number or not self._pool.empty()):
                    start = (next_number - 1) * size
                    part = _Part(next_number, self._pool.get(), min(size, total - start))
                    parts[next_number] = part
                    futures.append(fetchers.submit(self._fetch, source, link, part, start, total))
                    next_number += 1
                current = parts.pop(number)
                while not current.filled.wait(timeout=0.5):
                    _raise_first_failure(futures)
                futures.append(uploaders.submit(self._upload_part, current))
                self._hash(current)
                _raise_first_failure(futures)
            for future in futures:
                future.result()
        return self._bytes, self._whole.hexdigest()

    def _fetch(
        self, source: HttpSource, link: Callable[[bool], str], part: _Part, start: int, total: int
    ) -> None:
        refresh = False
        for attempt in range(1, RANGE_ATTEMPTS + 1):
            try:
                source.fetch_range(link(refresh), start, part.view, total)
                break
            except RetryableError as exc:
                if attempt == RANGE_ATTEMPTS:
                    raise
                refresh = isinstance(exc, LinkExpiredError)
                logger.warning("range retrying", part=part.number, reason=exc.reason, **self._label)
        part.filled.set()


def _raise_first_failure(futures: list["Future[None]"]) -> None:
    for future in futures:
        if future.done() and (error := future.exception()) is not None:
            raise error
