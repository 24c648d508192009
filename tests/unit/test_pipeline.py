"""The copy pipeline over the fakes: ordering, hashing, bounded buffers, range retries."""

import hashlib
import random
import time
from collections.abc import Callable

import pytest
from tests.fakes import FakeSource, FakeStore, FakeUpload

from kie2s3.errors import LinkExpiredError, RetryableError, SourceChangedError
from kie2s3.models import SourceVersion
from kie2s3.retries import RANGE_ATTEMPTS
from kie2s3.transfer.pipeline import Pipeline, PipelineShape

PART = 1024
DATA = random.Random(7).randbytes(10 * PART + 123)
PARTS = 11
URL = "https://cdn.aiquickdraw.com/p/file.mp4"
VERSION = SourceVersion(len(DATA), '"v1"', '"v1"', None)  # what the opening response declared
NARROW = PipelineShape(PART, 4, 3, 2)  # 4 buffers, 3 connections, 2 uploads


def _source(range_seconds: float = 0.0, *, ranged: bool = True) -> FakeSource:
    source = FakeSource(range_seconds=range_seconds)
    source.serve(URL, DATA, ranged=ranged)
    return source


def _upload() -> FakeUpload:
    return FakeStore().multipart_upload("kie/t1/00.mp4", content_type="video/mp4", metadata={})


def _pipeline(upload: FakeUpload, shape: PipelineShape = NARROW, first: bytes = b"") -> Pipeline:
    return Pipeline(shape, upload, first=bytearray(first or PART), label={})


def _link(refresh: bool) -> str:
    return URL


def _fill_first(part: memoryview) -> None:
    part[:] = DATA[:PART]


def _joined(upload: FakeUpload) -> bytes:
    return b"".join(upload.parts[n] for n in sorted(upload.parts))


def _starts(source: FakeSource) -> list[int]:
    return [start for _, start in source.ranges]


def _copy_by_ranges(
    upload: FakeUpload,
    source: FakeSource,
    fill_first: Callable[[memoryview], None] = _fill_first,
    shape: PipelineShape = NARROW,
) -> None:
    """A ranged copy of DATA, the first part from `fill_first`; every part uploaded, DATA's digest."""
    copied, digest = _pipeline(upload, shape).run_ranges(source, _link, VERSION, fill_first)
    assert (copied, digest) == (len(DATA), hashlib.sha256(DATA).hexdigest())
    assert _joined(upload) == DATA


def test_pipeline_ranges_hash_in_order_and_upload_every_part() -> None:
    upload, source = _upload(), _source(range_seconds=0.005)
    _copy_by_ranges(upload, source)
    assert sorted(upload.parts) == list(range(1, PARTS + 1))
    assert sorted(_starts(source)) == [n * PART for n in range(1, PARTS)]  # the first came with the opening
    assert 1 < source.most_in_flight <= 3


def test_pipeline_range_expired_link_is_resolved_again() -> None:
    source = _source()
    source.fail_range(3 * PART, LinkExpiredError("source answered HTTP 403"))
    source.fail_range(5 * PART, RetryableError("reset"))
    refreshes: list[bool] = []

    def link(refresh: bool) -> str:
        refreshes.append(refresh)
        return f"{URL}?link={sum(refreshes)}"

    _, digest = _pipeline(_upload(), PipelineShape(PART, 3, 2, 2)).run_ranges(
        source, link, VERSION, _fill_first
    )
    assert digest == hashlib.sha256(DATA).hexdigest()
    assert refreshes.count(True) == 1  # only the expired link was resolved again, not the reset
    assert _starts(source).count(3 * PART) == 2
    assert _starts(source).count(5 * PART) == 2


def test_pipeline_range_from_another_version_stops_the_copy_without_retrying_it() -> None:
    # Fetching the range again could not help: the whole transfer starts over from a new opening.
    source = _source()
    source.change(URL, DATA[::-1])
    with pytest.raises(SourceChangedError, match="changed"):
        _pipeline(_upload(), PipelineShape(PART, 3, 2, 2)).run_ranges(source, _link, VERSION, _fill_first)
    starts = _starts(source)
    assert starts
    assert len(starts) == len(set(starts))  # no range was asked for twice


def test_pipeline_range_failing_every_attempt_raises_after_its_attempts() -> None:
    source = _source()
    source.fail_range(2 * PART, *[RetryableError("reset")] * RANGE_ATTEMPTS)
    with pytest.raises(RetryableError, match="reset"):
        _pipeline(_upload(), PipelineShape(PART, 3, 2, 2)).run_ranges(source, _link, VERSION, _fill_first)
    assert _starts(source).count(2 * PART) == RANGE_ATTEMPTS


def test_pipeline_stream_mode_reads_in_order() -> None:
    upload = _upload()
    with _source(ranged=False).open(URL, max_bytes=len(DATA), first_part=PART) as stream:
        first = bytearray(PART)
        assert stream.fill(memoryview(first)) == PART
        copied, digest = _pipeline(upload, PipelineShape(PART, 3, 2, 2), first=bytes(first)).run_stream(
            stream, PART
        )
    assert (copied, digest) == (len(DATA), hashlib.sha256(DATA).hexdigest())
    assert _joined(upload) == DATA


def test_pipeline_buffers_are_bounded() -> None:
    upload = _upload()
    _copy_by_ranges(upload, _source(), shape=PipelineShape(PART, 4, 3, 2))
    assert len(upload.parts) == PARTS
    assert len(upload.buffers) <= 4  # eleven parts through at most four buffers, the caller's included


@pytest.mark.timeout(10)  # connections left waiting for a buffer would hang the copy
def test_pipeline_failed_upload_stops_connections_waiting_for_buffers() -> None:
    # Two buffers for three connections: some wait for a buffer that the failed copy never frees.
    store = FakeStore()
    upload = store.multipart_upload("kie/t1/00.mp4", content_type="video/mp4", metadata={})
    source = _source()
    store.fail("upload_part", 1, RetryableError("UploadPart failed"))
    with pytest.raises(RetryableError, match="UploadPart"):
        _pipeline(upload, PipelineShape(PART, 2, 3, 1)).run_ranges(source, _link, VERSION, _fill_first)
    assert len(source.ranges) < PARTS - 1  # the copy stopped before fetching every range


def test_pipeline_uses_every_connection_while_buffers_last() -> None:
    source = _source(range_seconds=0.02)
    upload = _upload()
    _copy_by_ranges(upload, source, shape=PipelineShape(PART, 5, 4, 2))
    assert source.most_in_flight == 4


def test_pipeline_other_ranges_do_not_wait_for_the_first_part() -> None:
    source = _source()

    def fill_first_after_another_range(part: memoryview) -> None:
        deadline = time.monotonic() + 5
        while not source.ranges:  # would wait forever if the first part held the other ranges back
            assert time.monotonic() < deadline, "no other range started while the first part was filling"
            time.sleep(0.001)
        _fill_first(part)

    _copy_by_ranges(_upload(), source, fill_first_after_another_range)
    assert 0 not in _starts(source)  # the first part came from the opening response


def test_pipeline_creates_the_upload_while_the_first_part_downloads() -> None:
    upload = _upload()

    def fill_first_once_created(part: memoryview) -> None:
        deadline = time.monotonic() + 5
        while upload.upload_id is None:  # in vain if the upload were created only when a part is sent
            assert time.monotonic() < deadline, "the upload was not created while the first part filled"
            time.sleep(0.001)
        _fill_first(part)

    _copy_by_ranges(upload, _source(), fill_first_once_created)


def _truncated(part: memoryview) -> None:
    raise RetryableError("first range ended after 10 of 1024 bytes")


def test_pipeline_first_part_broken_off_is_fetched_as_a_range() -> None:
    source = _source()
    _copy_by_ranges(_upload(), source, _truncated, PipelineShape(PART, 3, 2, 2))
    assert _starts(source).count(0) == 1


def test_pipeline_first_part_failing_every_attempt_raises() -> None:
    source = _source()
    source.fail_range(0, *[RetryableError("reset")] * RANGE_ATTEMPTS)
    with pytest.raises(RetryableError, match="reset"):
        _pipeline(_upload(), PipelineShape(PART, 3, 2, 2)).run_ranges(source, _link, VERSION, _truncated)
    # The opening response was the first attempt: the range is fetched for the others.
    assert _starts(source).count(0) == RANGE_ATTEMPTS - 1


def test_pipeline_makes_buffers_only_when_needed() -> None:
    upload = _upload()
    data = DATA[: PART + 100]  # two parts: the caller's buffer and one more, whatever the limit
    source = FakeSource()
    source.serve(URL, data, ranged=False)
    with source.open(URL, max_bytes=len(data), first_part=PART) as stream:
        first = bytearray(PART)
        stream.fill(memoryview(first))
        _pipeline(upload, PipelineShape(PART, 6, 3, 2), first=bytes(first)).run_stream(stream, PART)
    assert _joined(upload) == data
    assert len(upload.buffers) <= 2  # not the six the shape allows: two parts need two at most
