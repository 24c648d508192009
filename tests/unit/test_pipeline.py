"""The copy pipeline with in-memory fakes: ordering, hashing, bounded buffers, range retries."""

import hashlib
import random
import threading
import time
from typing import Any

import pytest

from kie2s3.adapters.http_source import LinkExpiredError
from kie2s3.errors import RetryableError
from kie2s3.logic.pipeline import Pipeline, PipelineShape

PART = 1024
DATA = random.Random(7).randbytes(10 * PART + 123)


class FakeUpload:
    def __init__(self) -> None:
        self.parts: dict[int, bytes] = {}
        self.lock = threading.Lock()

    @property
    def parts_done(self) -> int:
        return len(self.parts)

    def upload_part(self, number: int, data: memoryview, checksum: bytes) -> None:
        assert hashlib.sha256(data).digest() == checksum
        time.sleep(random.random() / 500)  # parts finish out of order
        with self.lock:
            self.parts[number] = bytes(data)

    def joined(self) -> bytes:
        return b"".join(self.parts[n] for n in sorted(self.parts))


class FakeSource:
    """Serves DATA by ranges; fails some ranges a given number of times."""

    def __init__(self, failures: dict[int, list[Exception]]) -> None:
        self.failures = failures
        self.calls: list[tuple[str, int]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()

    def fetch_range(self, url: str, start: int, into: memoryview, total: int) -> None:
        with self.lock:
            self.calls.append((url, start))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(random.random() / 500)
            if self.failures.get(start):
                raise self.failures[start].pop(0)
            into[:] = DATA[start : start + len(into)]
        finally:
            with self.lock:
                self.in_flight -= 1


class FakeStream:
    def __init__(self, data: bytes, offset: int) -> None:
        self.data = data
        self.at = offset

    def fill(self, into: memoryview) -> int:
        chunk = self.data[self.at : self.at + len(into)]
        into[: len(chunk)] = chunk
        self.at += len(chunk)
        return len(chunk)


def _pipeline(upload: FakeUpload, shape: PipelineShape) -> Pipeline:
    first = bytearray(PART)
    first[:] = DATA[:PART]
    return Pipeline(shape, upload, first=first, first_size=PART, label={})  # type: ignore[arg-type]


def test_pipeline_ranges_hash_in_order_and_upload_every_part() -> None:
    upload = FakeUpload()
    source = FakeSource({})
    copied, digest = _pipeline(upload, PipelineShape(PART, 4, 3, 2)).run_ranges(
        source,  # type: ignore[arg-type]
        lambda refresh: "link",
        len(DATA),
    )
    assert copied == len(DATA)
    assert digest == hashlib.sha256(DATA).hexdigest()
    assert upload.joined() == DATA
    assert sorted(upload.parts) == list(range(1, 12))
    assert 1 < source.most_in_flight <= 3


def test_pipeline_range_expired_link_is_resolved_again() -> None:
    upload = FakeUpload()
    source = FakeSource({3 * PART: [LinkExpiredError("403")], 5 * PART: [RetryableError("reset")]})
    links: list[bool] = []

    def link(refresh: bool) -> str:
        links.append(refresh)
        return f"link-{sum(links)}"

    _, digest = _pipeline(upload, PipelineShape(PART, 3, 2, 2)).run_ranges(source, link, len(DATA))  # type: ignore[arg-type]
    assert digest == hashlib.sha256(DATA).hexdigest()
    assert links.count(True) == 1  # only the expired link was refreshed, not the reset
    assert [start for _, start in source.calls].count(3 * PART) == 2


def test_pipeline_range_failing_every_attempt_raises() -> None:
    source = FakeSource({2 * PART: [RetryableError("reset")] * 3})
    with pytest.raises(RetryableError, match="reset"):
        _pipeline(FakeUpload(), PipelineShape(PART, 3, 2, 2)).run_ranges(source, lambda r: "l", len(DATA))  # type: ignore[arg-type]


def test_pipeline_stream_mode_reads_in_order() -> None:
    upload = FakeUpload()
    copied, digest = _pipeline(upload, PipelineShape(PART, 3, 2, 2)).run_stream(FakeStream(DATA, PART))  # type: ignore[arg-type]
    assert copied == len(DATA)
    assert digest == hashlib.sha256(DATA).hexdigest()
    assert upload.joined() == DATA


def test_pipeline_buffers_are_bounded(monkeypatch: Any) -> None:
    created: list[int] = []
    real = bytearray

    class Counting(real):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            created.append(len(self))

    monkeypatch.setattr("kie2s3.logic.pipeline.bytearray", Counting, raising=False)
    upload = FakeUpload()
    _pipeline(upload, PipelineShape(PART, 4, 3, 2)).run_ranges(FakeSource({}), lambda r: "l", len(DATA))  # type: ignore[arg-type]
    assert upload.joined() == DATA
    assert created == [PART] * 3  # the pool: buffers - 1 (the first part's buffer comes from the caller)
