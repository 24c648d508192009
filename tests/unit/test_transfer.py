"""One transfer over the fakes: link, opening, then one PUT, a stream or ranged parts; nothing else."""

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fakes import FILE_HOST, Fakes, make_fakes

from kie2s3.errors import LinkExpiredError, PermanentError, RetryableError, SourceChangedError
from kie2s3.logic.services import DEFAULT_SHAPE
from kie2s3.models import CopyJob, TransferResult
from kie2s3.transfer import Transfer, object_tags

MIB = 1024**2
PART = DEFAULT_SHAPE.part_bytes
URL = f"https://{FILE_HOST}/p/t1_0.mp4?sig=secret"
JOB = CopyJob(
    task_id="t1", index=0, source=URL, kind="video", family="market", key="kie/t1/00.mp4", model="veo3"
)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(2000)


def _transfer(fakes: Fakes) -> Transfer:
    services = fakes.services
    return Transfer(
        kie=services.kie,
        policy=services.policy,
        source=services.source,
        store=services.store,
        shape=DEFAULT_SHAPE,
        max_file_bytes=services.settings.max_file_bytes,
    )


def _bytes(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def test_transfer_small_file_is_one_put_carrying_its_tags_and_metadata() -> None:
    fakes = make_fakes()
    fakes.source.serve(URL, PNG, content_type="application/octet-stream")
    result = _transfer(fakes).run(JOB)
    digest = hashlib.sha256(PNG).hexdigest()
    assert result == TransferResult(
        bucket="archive-bucket",
        key=JOB.key,
        bytes=len(PNG),
        sha256=digest,
        content_type="image/png",
        tagged=True,
    )
    stored = fakes.store.objects[JOB.key]
    assert stored.body == PNG
    assert stored.tags == {"sha256": digest, "kie2s3:family": "market", "kie2s3:model": "veo3"}
    assert stored.metadata == {
        "task-id": "t1",
        "family": "market",
        "model": "veo3",
        "file-index": "0",
        "source": f"https://{FILE_HOST}/p/t1_0.mp4",  # never the link's signature
        "sha256": digest,
    }
    assert fakes.trips.log == [("kie", "POST download-url"), ("source", "GET"), ("s3", "PutObject")]


def test_transfer_zero_byte_file_is_one_empty_put() -> None:
    fakes = make_fakes()
    fakes.source.serve(URL, b"")
    result = _transfer(fakes).run(JOB)
    assert (result.bytes, result.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert fakes.store.objects[JOB.key].body == b""


@pytest.mark.parametrize("ranged", [True, False])
def test_transfer_large_file_is_a_multipart_upload_left_untagged(ranged: bool) -> None:
    fakes = make_fakes()
    data = _bytes(2 * PART + 5)
    fakes.source.serve(URL, data, ranged=ranged)
    result = _transfer(fakes).run(JOB)
    assert (result.bytes, result.sha256, result.tagged) == (
        len(data),
        hashlib.sha256(data).hexdigest(),
        False,
    )
    stored = fakes.store.objects[JOB.key]
    assert stored.body == data
    assert stored.tags == {}  # the caller tags it: the digest is known only now
    assert stored.metadata["task-id"] == "t1"
    assert fakes.store.incomplete_uploads == []
    # Ranged: the opening GET, then the two other parts as ranges; else one stream.
    assert fakes.source.requests["/p/t1_0.mp4"] == (3 if ranged else 1)
    assert fakes.trips.of("s3").count("UploadPart") == 3


def test_transfer_failed_part_aborts_the_upload() -> None:
    fakes = make_fakes()
    fakes.source.serve(URL, _bytes(2 * PART + MIB))
    fakes.store.fail("upload_part", 1, RetryableError("S3 UploadPart 2 failed: InternalError"))
    with pytest.raises(RetryableError, match="UploadPart"):
        _transfer(fakes).run(JOB)
    assert JOB.key not in fakes.store.objects
    assert fakes.store.incomplete_uploads == []
    assert "AbortMultipartUpload" in fakes.trips.of("s3")


def test_transfer_source_changed_midway_is_copied_from_one_plain_get() -> None:
    fakes = make_fakes()
    part = PART
    data = _bytes(2 * part + MIB)
    fakes.source.serve(URL, data)
    fakes.source.fail_range(part, SourceChangedError("source changed since the download began"))
    result = _transfer(fakes).run(JOB)
    assert (result.bytes, result.sha256, result.source_unstable) == (
        len(data),
        hashlib.sha256(data).hexdigest(),
        True,
    )
    assert fakes.store.objects[JOB.key].body == data
    # The ranged upload is aborted, never completed; the plain GET fills a new one.
    assert fakes.trips.of("s3").count("AbortMultipartUpload") == 1
    assert fakes.trips.of("s3").count("CompleteMultipartUpload") == 1
    assert fakes.store.incomplete_uploads == []
    assert fakes.kie.download_url_calls[URL] == 1  # the same link


def test_transfer_source_changing_on_every_request_stores_what_one_plain_get_served() -> None:
    fakes = make_fakes()
    size = 2 * PART + MIB + 7
    served = fakes.source.serve(URL, _bytes(size), unstable=True)
    result = _transfer(fakes).run(JOB)
    plain = served.served[-1]  # what the last request, the plain GET, was answered with
    assert len(set(served.served)) == len(served.served) > 1  # no two requests agreed
    assert (result.bytes, result.sha256, result.source_unstable) == (
        size,
        hashlib.sha256(plain).hexdigest(),
        True,
    )
    assert fakes.store.objects[JOB.key].body == plain
    assert fakes.store.incomplete_uploads == []


@settings(max_examples=25, deadline=None, database=None, derandomize=True)
@given(
    size=st.one_of(
        st.integers(0, 3 * PART),
        st.sampled_from([PART, PART + 1, 2 * PART + 1]),  # one part, just past it, a third part of 1 byte
    ),
    unstable=st.booleans(),
)
def test_transfer_stores_exactly_one_answer_of_the_source_whatever_it_does(size: int, unstable: bool) -> None:
    fakes = make_fakes()
    served = fakes.source.serve(URL, _bytes(size), unstable=unstable)
    original = served.data
    result = _transfer(fakes).run(JOB)
    stored = fakes.store.objects[JOB.key].body
    # A stable source is stored as it is; an unstable one as its last answer, the plain GET's when a
    # ranged download (a file past one part) saw it change, else the one GET that read it whole.
    assert stored == (served.served[-1] if unstable else original)
    assert (result.bytes, result.sha256) == (size, hashlib.sha256(stored).hexdigest())
    assert result.source_unstable is (unstable and size > PART)
    assert fakes.store.incomplete_uploads == []


def test_transfer_stable_source_is_not_marked_unstable() -> None:
    fakes = make_fakes()
    fakes.source.serve(URL, _bytes(11 * MIB))
    assert _transfer(fakes).run(JOB).source_unstable is False
    assert fakes.trips.of("s3").count("AbortMultipartUpload") == 0


def test_transfer_expired_link_of_a_range_is_resolved_again() -> None:
    fakes = make_fakes()
    data = _bytes(2 * PART + MIB)
    fakes.source.serve(URL, data)
    fakes.source.fail_range(2 * PART, LinkExpiredError("source answered HTTP 403"))
    assert _transfer(fakes).run(JOB).sha256 == hashlib.sha256(data).hexdigest()
    assert fakes.kie.download_url_calls[URL] == 2


def test_transfer_retries_nothing_but_ranges() -> None:
    # A failed opening is the caller's to retry, with a fresh link (logic/copy.py).
    fakes = make_fakes()
    fakes.source.serve(URL, PNG)
    fakes.source.fail("open", 1, RetryableError("source answered HTTP 503"))
    with pytest.raises(RetryableError, match="503"):
        _transfer(fakes).run(JOB)
    assert fakes.trips.log == [("kie", "POST download-url"), ("source", "GET")]


def test_transfer_key_holding_the_same_bytes_is_the_result() -> None:
    fakes = make_fakes()
    fakes.source.serve(URL, PNG)
    first = _transfer(fakes).run(JOB)
    again = _transfer(fakes).run(JOB)
    assert again == first


def test_transfer_untagged_object_with_the_same_bytes_is_hashed_and_tagged() -> None:
    # A multipart copy completed, then killed before its tags were written.
    fakes = make_fakes()
    data = _bytes(11 * MIB)
    fakes.source.serve(URL, data)
    _transfer(fakes).run(JOB)
    result = _transfer(fakes).run(JOB)
    assert result.tagged
    assert fakes.store.objects[JOB.key].tags == object_tags(JOB, hashlib.sha256(data).hexdigest())
    assert fakes.store.incomplete_uploads == []


def test_transfer_adopts_what_an_earlier_delivery_of_the_file_stored_from_another_version() -> None:
    # The soak (seed 3): a worker killed after its upload; the redelivery met a new version of the
    # source. The object stored is whole and verified: the file is archived as it holds it.
    fakes = make_fakes()
    fakes.source.serve(URL, PNG)
    _transfer(fakes).run(JOB)
    fakes.source.change(URL, PNG + b"!")
    result = _transfer(fakes).run(JOB)
    assert (result.sha256, result.bytes) == (hashlib.sha256(PNG).hexdigest(), len(PNG))
    assert result.tagged
    assert fakes.store.objects[JOB.key].body == PNG


def test_transfer_key_holding_bytes_of_another_file_is_never_overwritten() -> None:
    fakes = make_fakes()
    fakes.source.serve(URL, PNG)
    other = JOB.model_copy(update={"source": f"https://{FILE_HOST}/p/another.mp4", "index": JOB.index + 1})
    fakes.source.serve(other.source, PNG + b"!")
    _transfer(fakes).run(other.model_copy(update={"key": JOB.key}))  # a file of its own under this key
    with pytest.raises(PermanentError, match="different bytes"):
        _transfer(fakes).run(JOB)
    assert fakes.store.objects[JOB.key].body == PNG + b"!"
