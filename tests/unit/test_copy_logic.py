"""The exactly-once copy over the fakes: every branch of copy_file, and the `copying` status derives."""

import hashlib
import random
import time
from collections.abc import Iterator

import pytest
from tests.fakes import FAST_RETRY, FILE_HOST, Fakes, make_fakes

from kie2s3.errors import CopyInProgressError, PermanentError, RetryableError
from kie2s3.logic.copy import copy_file
from kie2s3.logic.status import status_document
from kie2s3.logic.takedown import take_down
from kie2s3.models import CopyJob, FileItem, FileState
from kie2s3.observability import metrics
from kie2s3.ports import now_iso
from kie2s3.transfer import object_tags

MIB = 1024**2
URL = f"https://{FILE_HOST}/p/t1_0.png?sig=secret"
PATH = "/p/t1_0.png"
PNG = b"\x89PNG\r\n\x1a\n" + random.Random(1).randbytes(3000)
JOB = CopyJob(
    task_id="t1", index=0, source=URL, kind="image", family="market", key="kie/t1/00.png", model="m"
)
# A single-part copy's critical path: nothing else, one request after the other.
SIX_ROUND_TRIPS = [
    ("idempotency", "TransactWriteItems"),  # the guard's in-progress record, fenced on its task
    ("kie", "POST download-url"),
    ("source", "GET"),
    ("s3", "PutObject"),  # the bytes with their metadata and tags
    ("idempotency", "UpdateItem"),  # the guard's success
    ("ledger", "UpdateItem"),  # copied
]


@pytest.fixture
def counted() -> Iterator[None]:
    """The test starts with no metric recorded (`_metrics()` reads what it added)."""
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def _metrics() -> dict[str, float]:
    """The metrics added so far, by name (values summed)."""
    return {name: sum(entry["Value"]) for name, entry in metrics.metric_set.items()}


def _recorded(fakes: Fakes, job: CopyJob = JOB, data: bytes = PNG, *, state: FileState = "pending") -> None:
    """The ledger has the job's task and file (as planning leaves them), and the source serves it."""
    fakes.ledger.seed_task(job.task_id, model=job.model)
    fakes.ledger.seed_file(
        FileItem(
            task_id=job.task_id,
            index=job.index,
            source=job.source.split("?")[0],
            source_url=job.source,
            kind=job.kind,
            key=job.key,
            state=state,
            updated_at=now_iso(),
        )
    )
    fakes.source.serve(job.source, data)


def _file(fakes: Fakes, job: CopyJob = JOB) -> FileItem:
    return fakes.ledger.files[(job.task_id, job.index)]


def _in_progress_elsewhere(fakes: Fakes, job: CopyJob = JOB, remaining_ms: int = 60_000) -> None:
    """The record another invocation writes as it starts the copy of the file."""
    fakes.records.save_inprogress({"task_id": job.task_id, "index": job.index}, remaining_ms)


def test_copy_first_copy_stores_records_and_costs_six_round_trips(counted: None) -> None:
    fakes = make_fakes()
    _recorded(fakes)
    fakes.trips.clear()
    result = copy_file(fakes.services, JOB)
    digest = hashlib.sha256(PNG).hexdigest()
    assert result is not None
    assert (result.key, result.bytes, result.sha256, result.content_type) == (
        JOB.key,
        len(PNG),
        digest,
        "image/png",
    )
    assert fakes.trips.log == SIX_ROUND_TRIPS
    stored = fakes.store.objects[JOB.key]
    assert (stored.body, stored.tags) == (PNG, object_tags(JOB, digest))
    item = _file(fakes)
    assert (item.state, item.bucket, item.key, item.bytes, item.sha256) == (
        "copied",
        "archive-bucket",
        JOB.key,
        len(PNG),
        digest,
    )
    assert fakes.records.statuses() == ["COMPLETED"]
    added = _metrics()
    assert set(added) == {"FilesCopied", "BytesCopied", "CopyDuration"}
    assert (added["FilesCopied"], added["BytesCopied"]) == (1, len(PNG))


def test_copy_multipart_file_is_tagged_after_its_upload_then_recorded() -> None:
    fakes = make_fakes()
    data = random.Random(2).randbytes(11 * MIB)
    job = JOB.model_copy(update={"key": "kie/t1/00.bin"})
    _recorded(fakes, job, data)
    fakes.trips.clear()
    result = copy_file(fakes.services, job)
    assert result is not None
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert fakes.store.objects[job.key].tags == object_tags(job, result.sha256)
    # After the transfer and its success record: one tag write carrying every tag, then copied.
    assert fakes.trips.log[-3:] == [
        ("idempotency", "UpdateItem"),
        ("s3", "PutObjectTagging"),
        ("ledger", "UpdateItem"),
    ]
    assert _file(fakes, job).state == "copied"


def test_copy_from_a_source_changing_on_every_request_is_recorded_as_unstable() -> None:
    fakes = make_fakes()
    job = JOB.model_copy(update={"key": "kie/t1/00.bin"})
    _recorded(fakes, job, random.Random(3).randbytes(11 * MIB))
    fakes.source.files[PATH].unstable = True
    result = copy_file(fakes.services, job)
    plain = fakes.source.files[PATH].served[-1]  # the plain GET's answer, the last request
    assert result is not None
    assert (result.sha256, result.source_unstable) == (hashlib.sha256(plain).hexdigest(), True)
    assert fakes.store.objects[job.key].body == plain
    item = _file(fakes, job)
    assert (item.state, item.sha256, item.source_unstable) == ("copied", result.sha256, True)
    (shown,) = status_document(fakes.services, job.task_id).model_dump(by_alias=True)["files"]
    assert (shown["state"], shown["sourceUnstable"]) == ("copied", True)
    # A duplicate answered from the idempotency record keeps saying so.
    assert copy_file(fakes.services, job) == result
    assert _file(fakes, job).source_unstable is True


def test_copy_duplicate_after_success_downloads_nothing_and_writes_copied_again() -> None:
    fakes = make_fakes()
    _recorded(fakes)
    first = copy_file(fakes.services, JOB)
    fakes.trips.clear()
    again = copy_file(fakes.services, JOB)
    assert again == first
    assert fakes.trips.log == [("idempotency", "TransactWriteItems"), ("ledger", "UpdateItem")]
    assert fakes.source.requests[PATH] == 1
    assert fakes.kie.download_url_calls[URL] == 1
    assert _file(fakes).state == "copied"


def test_copy_duplicate_while_in_progress_is_handed_back_without_downloading(counted: None) -> None:
    fakes = make_fakes()
    _recorded(fakes)
    _in_progress_elsewhere(fakes)
    with pytest.raises(CopyInProgressError):
        copy_file(fakes.services, JOB)
    assert fakes.source.requests == {}
    assert _file(fakes).state == "pending"  # the running copy records the outcome, not this one
    assert fakes.records.statuses() == ["INPROGRESS"]
    assert _metrics() == {"CopyDuplicates": 1}


def test_copy_duplicate_behind_a_lock_of_a_copy_already_recorded_is_done() -> None:
    # The copy that holds the lock stored and recorded the file but could not complete its record.
    fakes = make_fakes()
    _recorded(fakes)
    fakes.records.fail("UpdateItem")
    first = copy_file(fakes.services, JOB)
    assert first is not None
    assert _file(fakes).state == "copied"  # recorded all the same
    assert fakes.records.statuses() == ["INPROGRESS"]
    assert copy_file(fakes.services, JOB) is None  # no error: SQS drops the duplicate
    assert fakes.source.requests[PATH] == 1


def test_copy_permanent_failure_is_recorded_failed_and_never_retried(counted: None) -> None:
    fakes = make_fakes()
    _recorded(fakes)
    fakes.source.fail(
        "open", 1, PermanentError("source https://tempfile.aiquickdraw.com/p/t1_0.png answered HTTP 404")
    )
    assert copy_file(fakes.services, JOB) is None
    item = _file(fakes)
    assert (item.state, item.error) == (
        "failed",
        "source https://tempfile.aiquickdraw.com/p/t1_0.png answered HTTP 404",
    )
    assert fakes.source.requests[PATH] == 1
    assert fakes.records.records == {}  # no record: a new job may try again
    assert _metrics() == {"CopyFailures": 1}


def test_copy_passing_fault_is_retried_with_a_fresh_link_each_time() -> None:
    fakes = make_fakes()
    _recorded(fakes)
    fakes.source.fail("open", 2, RetryableError("source answered HTTP 503"))
    assert copy_file(fakes.services, JOB) is not None
    assert fakes.source.requests[PATH] == 3
    assert fakes.kie.download_url_calls[URL] == 3
    assert _file(fakes).state == "copied"


def test_copy_passing_fault_left_pending_for_the_next_delivery(counted: None) -> None:
    fakes = make_fakes()
    _recorded(fakes)
    fakes.source.fail("open", FAST_RETRY.attempts, RetryableError("source answered HTTP 503"))
    with pytest.raises(RetryableError, match="503"):
        copy_file(fakes.services, JOB)
    item = _file(fakes)
    assert (item.state, item.error) == ("pending", "source answered HTTP 503")
    assert fakes.source.requests[PATH] == FAST_RETRY.attempts
    assert fakes.records.records == {}
    assert _metrics() == {"CopyRetries": 1}


def test_copy_passing_fault_on_the_last_delivery_is_recorded_failed(counted: None) -> None:
    fakes = make_fakes()
    _recorded(fakes)
    fakes.source.fail("open", FAST_RETRY.attempts, RetryableError("source answered HTTP 503"))
    with pytest.raises(RetryableError):
        copy_file(fakes.services, JOB, last_delivery=True)
    item = _file(fakes)
    assert (item.state, item.error) == ("failed", "gave up after the last delivery: source answered HTTP 503")
    assert _metrics() == {"CopyFailures": 1}


def test_copy_retries_stop_at_the_deadline() -> None:
    fakes = make_fakes()
    _recorded(fakes)
    fakes.source.fail("open", FAST_RETRY.attempts, RetryableError("source answered HTTP 503"))
    with pytest.raises(RetryableError):
        # Less time left than the policy keeps back for recording the outcome: one attempt only.
        copy_file(fakes.services, JOB, deadline=time.monotonic() + FAST_RETRY.reserve_seconds / 2)
    assert fakes.source.requests[PATH] == 1


@pytest.mark.parametrize("size", [len(PNG), 11 * MIB], ids=["one PUT", "multipart"])
def test_copy_stores_nothing_once_its_lock_may_have_expired(size: int) -> None:
    # The copy's lock (its in-progress record) expires when the invocation would end: a takedown
    # stops waiting for the copy then and removes its keys. An object stored later than the lock
    # holds, with room for the request itself, would come back after the takedown (the soak, seed 3).
    fakes = make_fakes()
    job = JOB.model_copy(update={"key": "kie/t1/00.bin"})
    _recorded(fakes, job, random.Random(4).randbytes(size))
    with pytest.raises(RetryableError, match="lock"):
        copy_file(fakes.services, job, deadline=time.monotonic() + FAST_RETRY.commit_reserve_seconds / 2)
    assert fakes.store.objects == {}
    assert all(upload.aborted for upload in fakes.store.uploads)
    assert _file(fakes, job).state == "pending"
    assert fakes.records.statuses() == []  # no success recorded: the next delivery copies it


def test_copy_idempotency_store_down_downloads_nothing() -> None:
    fakes = make_fakes()
    _recorded(fakes)
    fakes.records.fail("TransactWriteItems")
    with pytest.raises(RetryableError, match="idempotency store unavailable"):
        copy_file(fakes.services, JOB)
    assert fakes.source.requests == {}
    assert _file(fakes).state == "pending"


def test_copy_stored_but_not_recorded_is_recorded_by_the_redelivery_without_downloading() -> None:
    fakes = make_fakes()
    _recorded(fakes)
    fakes.ledger.fail("update_file")  # the PUT succeeded; the ledger's `copied` does not
    with pytest.raises(RetryableError, match="ledger"):
        copy_file(fakes.services, JOB)
    assert JOB.key in fakes.store.objects
    assert _file(fakes).state == "pending"
    assert status_document(fakes.services, "t1").files[0].state == "copying"  # stored, not yet recorded
    fakes.trips.clear()
    result = copy_file(fakes.services, JOB)  # SQS delivers the job again
    assert result is not None
    assert result.sha256 == hashlib.sha256(PNG).hexdigest()
    assert fakes.trips.log == [("idempotency", "TransactWriteItems"), ("ledger", "UpdateItem")]
    assert fakes.source.requests[PATH] == 1
    assert _file(fakes).state == "copied"


def test_copy_multipart_tag_failure_is_tagged_by_the_redelivery_without_downloading() -> None:
    fakes = make_fakes()
    data = random.Random(3).randbytes(11 * MIB)
    job = JOB.model_copy(update={"key": "kie/t1/00.bin"})
    _recorded(fakes, job, data)
    fakes.store.fail("set_tags")
    with pytest.raises(RetryableError):
        copy_file(fakes.services, job)
    assert fakes.store.objects[job.key].tags == {}
    requests = fakes.source.requests[PATH]
    assert copy_file(fakes.services, job) is not None
    assert fakes.store.objects[job.key].tags == object_tags(job, hashlib.sha256(data).hexdigest())
    assert fakes.source.requests[PATH] == requests
    assert _file(fakes, job).state == "copied"


def test_copy_killed_copy_is_run_again_once_its_lock_expires() -> None:
    fakes = make_fakes()
    _recorded(fakes)
    _in_progress_elsewhere(fakes)
    assert status_document(fakes.services, "t1").files[0].state == "copying"
    fakes.records.expire_in_progress()  # the invocation holding it was killed: its timeout passed
    assert status_document(fakes.services, "t1").files[0].state == "pending"
    result = copy_file(fakes.services, JOB)
    assert result is not None
    assert _file(fakes).state == "copied"
    assert fakes.records.statuses() == ["COMPLETED"]


def test_copy_of_a_task_taken_down_downloads_and_stores_nothing() -> None:
    fakes = make_fakes()
    _recorded(fakes)
    take_down(fakes.ledger, fakes.store, fakes.guard, fakes.services.settings.object_prefix, "t1")
    fakes.trips.clear()
    assert copy_file(fakes.services, JOB) is None  # a job queued before the takedown, arriving after
    # One request, the one that opens every copy: its fence on the task held. No link, no GET, no object.
    assert fakes.trips.log == [("idempotency", "TransactWriteItems")]
    assert (fakes.store.objects, fakes.ledger.files, fakes.records.records) == ({}, {}, {})


def test_copy_under_way_when_its_task_is_taken_down_is_waited_out_then_removed() -> None:
    fakes = make_fakes()
    _recorded(fakes)
    _in_progress_elsewhere(fakes)  # a copy opened before the takedown
    waits: list[float] = []

    def copy_ends(seconds: float) -> None:  # while the takedown waits, that copy stores its object
        waits.append(seconds)
        fakes.store.put_raw(JOB.key, PNG)
        fakes.records.records.clear()

    report = take_down(fakes.ledger, fakes.store, fakes.guard, "kie/", "t1", sleep=copy_ends)

    assert len(waits) == 1
    assert report.removed == [JOB.key]
    assert fakes.store.objects == {}


def test_copy_of_a_file_the_ledger_never_had_records_nothing() -> None:
    fakes = make_fakes()
    fakes.source.serve(URL, PNG)
    assert copy_file(fakes.services, JOB) is None
    assert fakes.ledger.files == {}
    assert fakes.ledger.tasks == {}
    assert fakes.records.records == {}


def test_status_shows_a_pending_file_copying_only_while_its_copy_is_under_way() -> None:
    fakes = make_fakes()
    _recorded(fakes)
    second = JOB.model_copy(
        update={"index": 1, "key": "kie/t1/01.png", "source": f"https://{FILE_HOST}/p/t1_1.png"}
    )
    _recorded(fakes, second)
    fakes.trips.clear()
    doc = status_document(fakes.services, "t1")
    assert ([f.state for f in doc.files], doc.state) == (["pending", "pending"], "pending")
    assert fakes.trips.of("idempotency") == ["BatchGetItem"]  # one read for every pending file
    _in_progress_elsewhere(fakes, second)
    doc = status_document(fakes.services, "t1")
    assert ([f.state for f in doc.files], doc.state) == (["pending", "copying"], "copying")


def test_status_reads_no_record_when_nothing_is_pending() -> None:
    fakes = make_fakes()
    _recorded(fakes)
    copy_file(fakes.services, JOB)
    fakes.trips.clear()
    assert status_document(fakes.services, "t1").state == "copied"
    assert fakes.trips.of("idempotency") == []


def test_status_reads_an_old_item_left_copying_as_it_is() -> None:
    fakes = make_fakes()
    _recorded(fakes, state="copying")  # written by a version that wrote `copying` to the ledger
    doc = status_document(fakes.services, "t1")
    assert ([f.state for f in doc.files], doc.state) == (["copying"], "copying")
