"""Answers within Lambda's 6 MB: the status document lists the files that fit and says what it left
out, the bulk answer keeps every task, and SQS batches keep within 256 KiB (over the in-memory fakes).
"""

import dataclasses
import json
from typing import cast

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fakes import BUCKET, FakeLambdaContext, Fakes, make_fakes

from kie2s3.adapters.queue import SQS_BATCH_LIMIT, SQS_MESSAGE_BYTES, batches
from kie2s3.events import RECONCILE_INPUT
from kie2s3.handlers import schedule
from kie2s3.logic.copies import fitted_bulk
from kie2s3.logic.reconcile import ReconcileReport, report_answer
from kie2s3.logic.status import SHORT_REASON_CHARS, answer_bytes, fitted, status_document
from kie2s3.models import (
    MAX_ANSWER_BYTES,
    MAX_URL_CHARS,
    BulkCopyDocument,
    BulkCopyError,
    CopyJob,
    FileItem,
    ForwardJob,
    Outcome,
    StatusDocument,
    TaskItem,
)

TASK = "3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b"
NOW = "2026-12-08T00:00:00.000+00:00"
# Text as sources, reasons and errors may hold it: ASCII, quotes and backslashes (escaped twice in an
# answer), non-ASCII of every width (\uXXXX, and two of them past the BMP).
TEXT = st.text(alphabet=st.sampled_from('ab/%"\\é€\U0001d4b3'), max_size=300)


def _task(fakes: Fakes, task_id: str = TASK, reason: str | None = None) -> None:
    fakes.ledger.tasks[task_id] = TaskItem(
        task_id=task_id,
        family="market",
        outcome=Outcome.SUCCESS,
        reason=reason,
        created_at=NOW,
        updated_at=NOW,
    )


def _file(index: int, source: str, task_id: str = TASK, error: str | None = None) -> FileItem:
    return FileItem(
        task_id=task_id,
        index=index,
        source=f"https://tempfile.aiquickdraw.com/{index}/{source}",
        kind="image",
        key=f"kie/{task_id}/{index:02d}.png",
        state="failed" if error else "copied",
        bucket=BUCKET,
        bytes=None if error else 10,
        sha256=None if error else "ab" * 32,
        error=error,
        updated_at=NOW,
    )


def _document(sources: list[str], reason: str | None = None) -> StatusDocument:
    fakes = make_fakes()
    _task(fakes, reason=reason)
    for index, source in enumerate(sources):
        fakes.ledger.seed_file(_file(index, source, error=source[:40] or None))
    return status_document(fakes.services, TASK, budget=10**9)


def test_answer_bytes_bound_what_lambda_carries_of_a_body() -> None:
    doc = _document(['a"b\\c', "é€\U0001d4b3", "plain"], reason='kie.ai said "no" \\ é')
    # Powertools serialises a route's model compactly, ASCII-escaped; Lambda's runtime escapes the
    # body again as a JSON string. Both ways of writing the body fit within what answer_bytes counts.
    for body in (
        json.dumps(doc.model_dump(mode="json", by_alias=True), separators=(",", ":")),
        doc.model_dump_json(by_alias=True),
    ):
        assert len(json.dumps(body)) - 2 <= answer_bytes(doc)
    assert len(
        json.dumps(json.dumps(doc.model_dump(mode="json", by_alias=True), separators=(",", ":")))
    ) - 2 == (answer_bytes(doc))


@settings(max_examples=200, deadline=None)
@given(sources=st.lists(TEXT, min_size=1, max_size=25), budget=st.integers(0, 20_000))
def test_fitted_lists_a_prefix_of_the_files_within_the_budget_and_counts_the_rest(
    sources: list[str], budget: int
) -> None:
    whole = _document(sources)
    doc = fitted(whole, budget)
    listed = len(doc.files)
    assert doc.files == whole.files[:listed]
    assert [doc.state, doc.task_id, doc.reason] == [whole.state, whole.task_id, whole.reason]
    if listed == len(sources):
        assert (doc.files_omitted, doc.next_files_from) == (None, None)
        assert doc == whole
    else:
        assert doc.files_omitted == len(sources) - listed
        assert doc.next_files_from == whole.files[listed].index
    if listed:  # whatever it lists fits
        assert answer_bytes(doc) <= budget
    if listed < len(sources):  # and one more would not have
        one_more = whole.files[: listed + 1]
        assert answer_bytes(doc.model_copy(update={"files": one_more})) > budget - 2 * len(one_more)


@settings(max_examples=150, deadline=None)
@given(sources=st.lists(TEXT, min_size=1, max_size=30), budget=st.integers(0, 12_000))
def test_pages_from_next_files_from_list_every_file_once_in_order(sources: list[str], budget: int) -> None:
    fakes = make_fakes()
    _task(fakes)
    for index, source in enumerate(sources):
        fakes.ledger.seed_file(_file(index, source))
    listed: list[int] = []
    files_from = 0
    for _ in range(len(sources) + 1):
        page = status_document(fakes.services, TASK, links=True, files_from=files_from, budget=budget)
        assert page.state == "copied"  # the whole task's, on every page
        assert answer_bytes(page) <= budget or len(page.files) == 1  # one at least, whatever its size
        listed += [f.index for f in page.files]
        if page.next_files_from is None:
            break
        assert page.files
        files_from = page.next_files_from
    assert listed == list(range(len(sources)))


def test_a_reason_too_long_for_the_budget_is_cut() -> None:
    whole = _document(["a"], reason="r" * 100_000)
    doc = fitted(whole, 20_000)
    assert doc.reason == "r" * SHORT_REASON_CHARS + "…"
    assert doc.files == whole.files
    assert fitted(whole, 10**6) == whole


def test_status_document_of_a_taken_down_task_lists_nothing_and_omits_nothing() -> None:
    fakes = make_fakes()
    _task(fakes)
    fakes.ledger.seed_file(_file(0, "a"))
    fakes.ledger.tasks[TASK] = fakes.ledger.tasks[TASK].model_copy(update={"taken_down_at": NOW})
    doc = status_document(fakes.services, TASK, budget=0)
    assert (doc.files, doc.files_omitted, doc.next_files_from) == ([], None, None)
    assert "filesOmitted" not in doc.model_dump_json(by_alias=True)


@settings(max_examples=150, deadline=None)
@given(
    tasks=st.lists(st.lists(TEXT, max_size=12), min_size=1, max_size=8),
    budget=st.integers(3_000, 60_000),
)
def test_bulk_answer_keeps_every_task_within_the_budget(tasks: list[list[str]], budget: int) -> None:
    docs = [_document(sources).model_copy(update={"task_id": f"t{n}"}) for n, sources in enumerate(tasks)]
    whole = BulkCopyDocument(
        tasks=docs,
        unknown=["u1"],
        errors=[BulkCopyError(task_id="e1", message="kie.ai refused", retryable=False, processed=True)],
    )
    bulk = fitted_bulk(whole, budget)
    assert [t.task_id for t in bulk.tasks] == [t.task_id for t in docs]
    assert (bulk.unknown, bulk.errors) == (whole.unknown, whole.errors)
    assert answer_bytes(bulk) <= budget
    for fitted_doc, doc in zip(bulk.tasks, docs, strict=True):
        assert fitted_doc.files == doc.files[: len(fitted_doc.files)]
        assert (fitted_doc.files_omitted or 0) == len(doc.files) - len(fitted_doc.files)
        assert fitted_doc.state == doc.state
    if answer_bytes(whole) <= budget:
        assert bulk == whole


def test_fitted_again_keeps_counting_the_files_left_out_before() -> None:
    whole = _document([f"{n}" * 50 for n in range(10)])
    once = fitted(whole, answer_bytes(whole) // 2)
    twice = fitted(once, answer_bytes(once) // 2)
    assert len(twice.files) < len(once.files) < len(whole.files)
    assert twice.files_omitted == len(whole.files) - len(twice.files)
    assert twice.next_files_from == whole.files[len(twice.files)].index


# -- SQS: the largest job the API can enqueue, in batches SQS takes ----------------------------------


def _largest_job(index: int) -> CopyJob:
    """A copy job as large as the API lets one be: a source of MAX_URL_CHARS four-byte characters,
    the longest task id, a key of S3's 1,024 bytes, a model of 256 characters (market.MAX_MODEL_CHARS)."""
    url = "https://tempfile.aiquickdraw.com/"
    return CopyJob(
        task_id="t" * 128,
        index=index,
        source=url + "\U0001d4b3" * (MAX_URL_CHARS - len(url)),
        kind="image",
        family="f" * 32,
        key="k" * 1024,
        model="\U0001d4b3" * 256,
    )


def test_the_largest_copy_jobs_are_sent_ten_a_batch_within_sqs_limits() -> None:
    bodies = [_largest_job(n).model_dump_json() for n in range(50)]
    sent = list(batches(bodies))
    assert [b for batch in sent for b in batch] == bodies
    assert [len(batch) for batch in sent] == [SQS_BATCH_LIMIT] * 5
    assert max(sum(len(b.encode()) for b in batch) for batch in sent) <= SQS_MESSAGE_BYTES


def test_batches_of_larger_messages_keep_within_256_kib_in_all() -> None:
    bodies = ["x" * 100_000, "y" * 100_000, "z" * 100_000, "w"]
    assert list(batches(bodies)) == [bodies[:2], bodies[2:]]
    with pytest.raises(ValueError, match="SQS takes at most"):
        list(batches(["x" * (SQS_MESSAGE_BYTES + 1)]))


def test_a_forward_job_is_far_within_one_sqs_message() -> None:
    # The Host header it keeps is bounded by API Gateway's 10,240 bytes of request line and headers.
    job = ForwardJob(task_id="t" * 128, raw_key="k" * 1024, arrived_at=0.0, host="h" * 10_240)
    assert len(job.model_dump_json().encode()) < SQS_MESSAGE_BYTES // 20


# -- the scheduled reconciler's answer ---------------------------------------------------------------


def _backlog_report() -> ReconcileReport:
    """A pass over a large backlog: 50,000 files re-sent (task ids of 128 characters), a few others."""
    return ReconcileReport(
        resent=[f"{'t' * 128}#{n}" for n in range(50_000)],
        expired=[f"{'e' * 128}#{n}" for n in range(3)],
        errors=["kie.ai answered 503"],
    )


def test_reconcile_answer_of_a_large_backlog_fits_lambdas_six_mb(monkeypatch: pytest.MonkeyPatch) -> None:
    fakes = make_fakes()
    monkeypatch.setattr(schedule, "get_services", lambda: fakes.services)
    monkeypatch.setattr(schedule, "reconcile", lambda services, deadline: _backlog_report())
    context = cast("LambdaContext", FakeLambdaContext())

    answer = schedule.handle_schedule(dict(RECONCILE_INPUT), context)

    assert len(json.dumps(answer)) <= MAX_ANSWER_BYTES
    assert answer["expired"] == _backlog_report().expired
    assert answer["errors"] == ["kie.ai answered 503"]
    assert answer["resent"] == _backlog_report().resent[: len(answer["resent"])]
    assert answer["omitted"] == {"resent": 50_000 - len(answer["resent"])}
    assert len(answer["resent"]) > 40_000  # the other lists' shares go to it


def test_reconcile_answer_that_fits_is_the_whole_report() -> None:
    report = ReconcileReport(resent=["a#0"], aborted_uploads=["kie/a/00.png"])
    assert report_answer(report) == dataclasses.asdict(report)
    assert "omitted" not in report_answer(report)


@settings(max_examples=200, deadline=None)
@given(
    lists=st.lists(st.lists(TEXT, max_size=40), min_size=8, max_size=8),
    budget=st.integers(1_000, 20_000),
)
def test_reconcile_answer_keeps_within_any_budget_and_counts_what_it_left_out(
    lists: list[list[str]], budget: int
) -> None:
    report = ReconcileReport(*lists)
    whole = dataclasses.asdict(report)
    answer = report_answer(report, budget)
    assert len(json.dumps(answer)) <= budget
    omitted = answer.get("omitted", {})
    for name, entries in whole.items():
        assert answer[name] == entries[: len(answer[name])]
        assert omitted.get(name, 0) == len(entries) - len(answer[name])
