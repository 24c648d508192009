"""The copy pipeline with in-memory fakes: ordering, hashing, bounded buffers, range retries."""

import hashlib
import random
import threading
import time
from typing import Any

import pytest

from kie2s3.adapters.http_source import LinkExpiredError, SourceChangedError, SourceVersion
from kie2s3.errors import RetryableError
from kie2s3.logic import pipeline
from kie2s3.logic.pipeline import Pipeline, PipelineShape

PART = 1024
DATA = random.Random(7).randbytes(10 * PART + 123)
VERSION = SourceVersion(len(DATA), '"v1"', '"v1"', None)  # what the opening response declared


class FakeUpload:
    def __init__(self, create_seconds: float = 0.0) -> None:
        self.parts: dict[int, bytes] = {}
        self.lock = threading.Lock()
        self.created = threading.Event()
        self.create_seconds = create_seconds
        self.created_at: float | None = None

    def create(self) -> str:
        time.sleep(self.create_seconds)
        self.created_at = time.monotonic()
        self.created.set()
        return "upload-id"

    @property
    def parts_done(self) -> int:
        return len(self.parts)

    def upload_part(self, number: int, data: memoryview) -> None:
        time.sleep(random.random() / 500)  # parts finish out of order
        with self.lock:
            self.parts[number] = bytes(data)

    def joined(self) -> bytes:
        return b"".join(self.parts[n] for n in sorted(self.parts))


class FakeSource:
    """Serves DATA by ranges; fails some ranges a given number of times."""

    def __init__(self, failures: dict[int, list[Exception]], delay: float | None = None) -> None:
        self.failures = failures
        self.delay = delay
        self.calls: list[tuple[str, int]] = []
        self.starts: list[tuple[float, int]] = []  # (time.monotonic(), start) of each range asked for
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()

    def fetch_range(self, url: str, start: int, into: memoryview, version: SourceVersion) -> None:
        assert version is VERSION  # every range is pinned to the opening response's version
        with self.lock:
            self.calls.append((url, start))
            self.starts.append((time.monotonic(), start))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.delay or random.random() / 500)
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


def _pipeline(upload: FakeUpload, shape: PipelineShape, first: bytes = b"") -> Pipeline:
    return Pipeline(shape, upload, first=bytearray(first or PART), label={})  # type: ignore[arg-type]


def _fill_first(part: memoryview) -> None:
    part[:] = DATA[:PART]


NARROW = PipelineShape(PART, 4, 3, 2)  # 4 buffers, 3 connections, 2 uploads


def _copy_by_ranges(
    upload: FakeUpload,
    source: FakeSource,
    fill_first: Any,
    shape: PipelineShape = NARROW,
) -> None:
    """A ranged copy of DATA, the first part from `fill_first`; its digest must be DATA's."""
    _, digest = _pipeline(upload, shape).run_ranges(source, lambda refresh: "link", VERSION, fill_first)  # type: ignore[arg-type]
    assert digest == hashlib.sha256(DATA).hexdigest()


def test_pipeline_ranges_hash_in_order_and_upload_every_part() -> None:
    upload = FakeUpload()
    source = FakeSource({})
    copied, digest = _pipeline(upload, PipelineShape(PART, 4, 3, 2)).run_ranges(
        source,  # type: ignore[arg-type]
        lambda refresh: "link",
        VERSION,
        _fill_first,
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

    _, digest = _pipeline(upload, PipelineShape(PART, 3, 2, 2)).run_ranges(source, link, VERSION, _fill_first)  # type: ignore[arg-type]
    assert digest == hashlib.sha256(DATA).hexdigest()
    assert links.count(True) == 1  # only the expired link was refreshed, not the reset
    assert [start for _, start in source.calls].count(3 * PART) == 2


def test_pipeline_range_from_another_version_stops_the_copy_without_retrying_it() -> None:
    # Fetching the range again could not help: the whole transfer starts over from a new opening.
    source = FakeSource({3 * PART: [SourceChangedError("source changed since the download began")]})
    with pytest.raises(SourceChangedError, match="changed"):
        _pipeline(FakeUpload(), PipelineShape(PART, 3, 2, 2)).run_ranges(
            source, lambda r: "l", VERSION, _fill_first
        )  # type: ignore[arg-type]
    assert [start for _, start in source.calls].count(3 * PART) == 1


def test_pipeline_range_failing_every_attempt_raises() -> None:
    source = FakeSource({2 * PART: [RetryableError("reset")] * 3})
    with pytest.raises(RetryableError, match="reset"):
        _pipeline(FakeUpload(), PipelineShape(PART, 3, 2, 2)).run_ranges(
            source, lambda r: "l", VERSION, _fill_first
        )  # type: ignore[arg-type]


def test_pipeline_stream_mode_reads_in_order() -> None:
    upload = FakeUpload()
    pipeline = _pipeline(upload, PipelineShape(PART, 3, 2, 2), first=DATA[:PART])
    copied, digest = pipeline.run_stream(FakeStream(DATA, PART), PART)  # type: ignore[arg-type]
    assert copied == len(DATA)
    assert digest == hashlib.sha256(DATA).hexdigest()
    assert upload.joined() == DATA


@pytest.fixture
def created(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the buffers the pipeline makes."""
    sizes: list[int] = []
    real = bytearray

    class Counting(real):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            sizes.append(len(self))

    monkeypatch.setattr("kie2s3.logic.pipeline.bytearray", Counting, raising=False)
    return sizes


def test_pipeline_buffers_are_bounded(created: list[int]) -> None:
    upload = FakeUpload()
    _pipeline(upload, PipelineShape(PART, 4, 3, 2)).run_ranges(
        FakeSource({}), lambda r: "l", VERSION, _fill_first
    )  # type: ignore[arg-type]
    assert upload.joined() == DATA
    assert created == [PART] * 3  # the pool: buffers - 1 (the first part's buffer comes from the caller)


class FailingUpload(FakeUpload):
    def upload_part(self, number: int, data: memoryview) -> None:
        if number == 3:
            raise RetryableError("UploadPart 3 failed")
        super().upload_part(number, data)


def test_pipeline_failed_upload_stops_connections_waiting_for_buffers() -> None:
    # Two buffers for three connections: some wait for a buffer that the failed copy never frees.
    source = FakeSource({})
    started = time.monotonic()
    with pytest.raises(RetryableError, match="UploadPart 3"):
        _pipeline(FailingUpload(), PipelineShape(PART, 2, 3, 1)).run_ranges(
            source, lambda r: "l", VERSION, _fill_first
        )  # type: ignore[arg-type]
    assert time.monotonic() - started < 5
    assert len(source.calls) < 11  # the copy stopped before fetching every range


def test_pipeline_uses_every_connection_while_buffers_last() -> None:
    source = FakeSource({}, delay=0.02)
    upload = FakeUpload()
    _pipeline(upload, PipelineShape(PART, 5, 4, 2)).run_ranges(source, lambda r: "l", VERSION, _fill_first)  # type: ignore[arg-type]
    assert upload.joined() == DATA
    assert source.most_in_flight == 4


def test_pipeline_slow_first_part_gets_the_other_ranges_after_its_head_start() -> None:
    source = FakeSource({})

    def fill_first_after_another_range(part: memoryview) -> None:
        deadline = time.monotonic() + 5
        while not source.calls:  # would wait forever if the first part held the other ranges back
            assert time.monotonic() < deadline, "no other range started while the first part was filling"
            time.sleep(0.001)
        _fill_first(part)

    _copy_by_ranges(FakeUpload(), source, fill_first_after_another_range)
    assert 0 not in [start for _, start in source.calls]  # the first part came from the opening response


def test_pipeline_other_connections_wait_for_the_first_part(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "FIRST_PART_HEAD_START_SECONDS", 5.0)  # never the limit here
    source = FakeSource({})
    first_filled: list[float] = []

    def first(part: memoryview) -> None:
        time.sleep(0.02)
        _fill_first(part)
        first_filled.append(time.monotonic())

    _copy_by_ranges(FakeUpload(), source, first)
    # Every range began after the first part was full: it had the line to itself.
    assert min(at for at, _ in source.starts) >= first_filled[0]


def test_pipeline_other_connections_wait_for_the_upload_to_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "FIRST_PART_HEAD_START_SECONDS", 5.0)  # never the limit here
    source = FakeSource({})
    upload = FakeUpload(create_seconds=0.05)  # S3 slower than the first part
    _copy_by_ranges(upload, source, _fill_first)
    assert upload.created_at is not None
    # The first UploadPart and its create did not share the line with the other ranges.
    assert min(at for at, _ in source.starts) >= upload.created_at


def test_pipeline_creates_the_upload_while_the_first_part_downloads() -> None:
    upload = FakeUpload()

    def fill_first_once_created(part: memoryview) -> None:
        # Waits in vain if the upload were created only when the first part is sent.
        assert upload.created.wait(timeout=5), "the upload was not created while the first part filled"
        _fill_first(part)

    _copy_by_ranges(upload, FakeSource({}), fill_first_once_created)


def _truncated(part: memoryview) -> None:
    raise RetryableError("first range ended after 10 of 1024 bytes")


def test_pipeline_first_part_broken_off_is_fetched_as_a_range() -> None:
    source = FakeSource({})
    _copy_by_ranges(FakeUpload(), source, _truncated, PipelineShape(PART, 3, 2, 2))
    assert [start for _, start in source.calls].count(0) == 1


def test_pipeline_first_part_failing_every_attempt_raises() -> None:
    source = FakeSource({0: [RetryableError("reset")] * 2})
    with pytest.raises(RetryableError, match="reset"):
        _pipeline(FakeUpload(), PipelineShape(PART, 3, 2, 2)).run_ranges(
            source, lambda r: "l", VERSION, _truncated
        )  # type: ignore[arg-type]
    assert [start for _, start in source.calls].count(0) == 2  # the opening response and 2 ranges: 3 attempts


def test_pipeline_makes_buffers_only_when_needed(created: list[int]) -> None:
    upload = FakeUpload()
    data = DATA[: PART + 100]  # two parts: the caller's buffer and one more, whatever the limit
    pipeline = _pipeline(upload, PipelineShape(PART, 6, 3, 2), first=data[:PART])
    pipeline.run_stream(FakeStream(data, PART), PART)  # type: ignore[arg-type]
    assert upload.joined() == data
    assert created == [PART]
