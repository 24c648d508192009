"""The copy pipeline: parts flow from the source into S3 through a fixed set of reusable buffers.

Download and upload overlap: several parts are in flight at once, each in its own buffer. When the
source honours Range requests and names its version, the parts are fetched on several connections
in parallel (a throttled origin is then no slower than its per-connection limit times the connection
count), every range pinned to the version the download opened on; otherwise one stream fills the
buffers in order. The whole-file SHA-256 is computed in order
as parts arrive. Memory is at most `buffers x part size`, whatever the file size.
"""

import hashlib
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from kie2s3.errors import LinkExpiredError, RetryableError, SourceChangedError
from kie2s3.models import SourceVersion
from kie2s3.observability import logger
from kie2s3.ports import Source, SourceStream, Upload
from kie2s3.retries import RANGE_ATTEMPTS

# A long copy logs its progress at most this often.
PROGRESS_EVERY_SECONDS = 10.0
# How often a thread waiting for a buffer or a part looks whether the copy has failed meanwhile.
_STOP_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class PipelineShape:
    """How wide the pipeline is: part size, buffers, connections."""

    part_bytes: int
    buffers: int  # every part in flight holds one: memory is buffers x part_bytes
    connections: int  # parallel range downloads
    uploads: int  # parallel UploadPart calls


class _Buffers:
    """At most `limit` part buffers, each made when first needed and then reused."""

    def __init__(self, size: int, limit: int) -> None:
        self._size = size
        self._limit = limit
        self._made = 1  # the caller's buffer for the first part
        self._free: queue.Queue[bytearray] = queue.Queue()
        self._lock = threading.Lock()

    def get(self, timeout: float | None = None) -> bytearray:
        """A free buffer (a new one while under the limit); queue.Empty after `timeout` seconds."""
        try:
            return self._free.get_nowait()
        except queue.Empty:
            with self._lock:
                if self._made < self._limit:
                    self._made += 1
                    return bytearray(self._size)
        return self._free.get(timeout=timeout)

    def put(self, buffer: bytearray) -> None:
        self._free.put(buffer)


class _Part:
    """A part's buffer and the two things that must happen before the buffer is free again."""

    def __init__(self, number: int, buffer: bytearray, size: int) -> None:
        self.number = number
        self.buffer = buffer
        self.view = memoryview(buffer)[:size]
        self.filled = False
        self._pending = 2  # hashed (in order, by the caller) and uploaded (by a worker)
        self._lock = threading.Lock()

    def done_with(self, buffers: _Buffers) -> None:
        with self._lock:
            self._pending -= 1
            free = self._pending == 0
        if free:
            self.view.release()
            buffers.put(self.buffer)


class Pipeline:
    """Moves one source into one multipart upload; each `run_*` returns (bytes, whole-file sha256)."""

    def __init__(
        self, shape: PipelineShape, upload: Upload, *, first: bytearray, label: dict[str, Any]
    ) -> None:
        self._shape = shape
        self._upload = upload
        self._buffers = _Buffers(shape.part_bytes, shape.buffers)
        self._first = first
        self._label = label
        self._whole = hashlib.sha256()
        self._bytes = 0
        self._progress_at = time.monotonic() + PROGRESS_EVERY_SECONDS

    def _upload_part(self, part: _Part) -> None:
        try:
            self._upload.upload_part(part.number, part.view)
        finally:
            part.done_with(self._buffers)

    def _hash(self, part: _Part) -> None:
        self._whole.update(part.view)
        self._bytes += len(part.view)
        part.done_with(self._buffers)
        if time.monotonic() >= self._progress_at:
            self._progress_at = time.monotonic() + PROGRESS_EVERY_SECONDS
            logger.info("copy progress", bytes=self._bytes, parts=self._upload.parts_done, **self._label)

    def run_stream(self, stream: SourceStream, first_size: int) -> tuple[int, str]:
        """One connection: the caller's thread fills buffers in order (the first holds `first_size`
        bytes already), workers upload them."""
        with ThreadPoolExecutor(self._shape.uploads, thread_name_prefix="part") as workers:
            uploads: list[Future[None]] = []
            part = _Part(1, self._first, first_size)
            while True:
                # Read before the part is handed on: once hashed and uploaded, its view is released.
                short = len(part.view) < self._shape.part_bytes
                uploads.append(workers.submit(self._upload_part, part))
                self._hash(part)
                _raise_first_failure(uploads)
                if short:
                    break  # a short fill means the stream has ended
                buffer = self._buffers.get()  # blocks while every buffer is in flight: memory stays bounded
                size = stream.fill(memoryview(buffer))
                if size == 0:
                    self._buffers.put(buffer)
                    break
                part = _Part(part.number + 1, buffer, size)
            for future in uploads:
                future.result()
        return self._bytes, self._whole.hexdigest()

    def run_ranges(
        self,
        source: Source,
        link: Callable[[bool], str],
        version: SourceVersion,
        fill_first: Callable[[memoryview], None],
    ) -> tuple[int, str]:
        """Several connections fetch consecutive ranges of `version` into buffers; others upload them.

        `fill_first` fills the first part (from the response that opened the download) on one
        connection while S3 creates the upload and the other connections fetch the next parts. Each
        connection claims the next part as soon as a buffer is free, so every connection stays
        busy while buffers last; the caller's thread takes the parts in order, hashes them and
        hands them to the uploads. Parts are numbered in the order their buffers are taken, so the
        lowest part not yet hashed always has one: the in-order hashing never waits on a buffer
        held by a later part. A range of another version (SourceChangedError) stops the copy.
        """
        size = self._shape.part_bytes
        total = version.total
        board = _Board(self._buffers, _Part(1, self._first, min(size, total)), size, total)
        with (
            ThreadPoolExecutor(self._shape.connections, thread_name_prefix="range") as fetchers,
            ThreadPoolExecutor(self._shape.uploads, thread_name_prefix="part") as uploaders,
        ):
            # S3 creates the upload while the first part downloads, not when it is ready.
            futures: list[Future[Any]] = [uploaders.submit(self._upload.create)]
            futures.append(fetchers.submit(self._fill_first, board, fill_first, source, link, version))
            futures += [
                fetchers.submit(self._fetch_parts, board, source, link, version)
                for _ in range(min(self._shape.connections, board.count - 1))
            ]
            try:
                for number in range(1, board.count + 1):
                    current = board.take(number, lambda: _raise_first_failure(futures))
                    futures.append(uploaders.submit(self._upload_part, current))
                    self._hash(current)
                    _raise_first_failure(futures)
                for future in futures:
                    future.result()
            finally:
                board.stop()  # connections still waiting for a buffer give up
        return self._bytes, self._whole.hexdigest()

    def _fill_first(
        self,
        board: "_Board",
        fill_first: Callable[[memoryview], None],
        source: Source,
        link: Callable[[bool], str],
        version: SourceVersion,
    ) -> None:
        part = board.first
        try:
            fill_first(part.view)
        except RetryableError as exc:  # the opening response broke off: fetch the part as a range
            logger.warning("range retrying", part=part.number, reason=exc.reason, **self._label)
            # The opening response was the part's first attempt.
            self._fetch(part, source, link, version, attempts=RANGE_ATTEMPTS - 1)
        board.filled(part)

    def _fetch_parts(
        self, board: "_Board", source: Source, link: Callable[[bool], str], version: SourceVersion
    ) -> None:
        while (part := board.claim()) is not None:
            self._fetch(part, source, link, version)
            board.filled(part)

    def _fetch(
        self,
        part: _Part,
        source: Source,
        link: Callable[[bool], str],
        version: SourceVersion,
        attempts: int = RANGE_ATTEMPTS,
    ) -> None:
        """Fetch the part's range, again on a passing fault (kie2s3/retries.py): with a fresh link
        after an expired one; never after a range of another version (the transfer then reads the
        file from one plain GET)."""
        start = (part.number - 1) * self._shape.part_bytes
        retrying = Retrying(
            stop=stop_after_attempt(attempts),
            retry=retry_if_exception(_range_may_succeed),
            reraise=True,
            before_sleep=lambda state: self._log_range_retry(part, state),
        )
        expired = False
        for attempt in retrying:
            with attempt:
                source.fetch_range(link(expired), start, part.view, version)
            outcome = attempt.retry_state.outcome
            expired = outcome is not None and isinstance(outcome.exception(), LinkExpiredError)

    def _log_range_retry(self, part: _Part, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        reason = error.reason if isinstance(error, RetryableError) else type(error).__name__
        logger.warning("range retrying", part=part.number, reason=reason, **self._label)


def _range_may_succeed(error: BaseException) -> bool:
    """A passing fault, unless the source changed version: fetching that range again cannot help."""
    return isinstance(error, RetryableError) and not isinstance(error, SourceChangedError)


class _Board:
    """Where connections claim the next part (with a free buffer) and the consumer takes filled parts."""

    def __init__(self, buffers: _Buffers, first: _Part, part_bytes: int, total: int) -> None:
        self.count = -(-total // part_bytes)
        self.first = first
        self._buffers = buffers
        self._part_bytes = part_bytes
        self._total = total
        self._next = 2
        self._claiming = threading.Lock()  # one claim at a time: part numbers follow the buffers' order
        self._changed = threading.Condition()
        self._parts: dict[int, _Part] = {1: first}
        self._stopped = threading.Event()

    def claim(self) -> _Part | None:
        """The next part with its buffer (waiting for one to be free); None when none is left to fetch."""
        with self._claiming:
            if self._next > self.count or self._stopped.is_set():
                return None
            while True:
                try:
                    buffer = self._buffers.get(timeout=_STOP_POLL_SECONDS)
                    break
                except queue.Empty:
                    if self._stopped.is_set():
                        return None
            number = self._next
            self._next += 1
        start = (number - 1) * self._part_bytes
        part = _Part(number, buffer, min(self._part_bytes, self._total - start))
        with self._changed:
            self._parts[number] = part
        return part

    def filled(self, part: _Part) -> None:
        """A connection has fetched the part: the consumer may take it."""
        with self._changed:
            part.filled = True
            self._changed.notify_all()

    def take(self, number: int, check: Callable[[], None]) -> _Part:
        """Part `number` once filled; `check` runs while waiting (it raises when a connection failed)."""
        with self._changed:
            while (part := self._parts.get(number)) is None or not part.filled:
                self._changed.wait(timeout=_STOP_POLL_SECONDS)
                check()
            return self._parts.pop(number)

    def stop(self) -> None:
        self._stopped.set()


def _raise_first_failure(futures: list["Future[Any]"]) -> None:
    """Raise the error of the first failed future; those done without one leave the list, so that
    each check looks at the parts in flight, not at every part of the file so far."""
    for future in [f for f in futures if f.done()]:
        if (error := future.exception()) is not None:
            raise error
        futures.remove(future)
