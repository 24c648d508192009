"""`POST /copies` over the in-memory fakes: by URLs (refusals listed, nothing recorded), by task id
from record-info, and in bulk (each task's own verdict, the deadline)."""

import hashlib
import time

import pytest
from devstack.callbacks import market_body
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.callback_requests import result_urls, serve
from tests.fakes import Fakes, make_fakes

from kie2s3.errors import BadRequestError, KieRejectedError, NotFoundError, RetryableError, UpstreamError
from kie2s3.logic import copies
from kie2s3.logic.copies import NOT_PROCESSED, request_bulk_copies, request_copies
from kie2s3.models import BulkCopyDocument, BulkCopyRequest, CopyRequest, Outcome, StatusDocument
from kie2s3.retries import BULK_POLICY, KIE_TIMEOUTS, BulkPolicy

TASK = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"
MARKET_RECORD_INFO = "/api/v1/jobs/recordInfo"


@pytest.fixture
def fakes() -> Fakes:
    return make_fakes()


def _copies(fakes: Fakes, **body: object) -> StatusDocument:
    return request_copies(fakes.services, CopyRequest.model_validate({"taskId": TASK, **body}))


def _finished(fakes: Fakes, task_id: str, *suffixes: str) -> list[str]:
    """A finished Market task whose record-info lists a file per suffix."""
    urls = result_urls(task_id, *(suffixes or (".png",)))
    fakes.kie.records[(MARKET_RECORD_INFO, task_id)] = market_body(task_id, urls)["data"]
    return urls


def _running(fakes: Fakes, task_id: str) -> None:
    data = market_body(task_id, [])["data"]
    fakes.kie.records[(MARKET_RECORD_INFO, task_id)] = {**data, "state": "generating", "resultJson": None}


# -- by URLs --------------------------------------------------------------------------------------------


def test_copies_refused_urls_are_listed_each_with_its_reason_and_nothing_is_recorded(fakes: Fakes) -> None:
    good = result_urls(TASK, ".png")[0]
    refused = ["http://169.254.169.254/latest/meta-data/", "https://evil.example.com/x.png", "https://u:p@tempfile.aiquickdraw.com/a.png"]  # fmt: skip

    with pytest.raises(BadRequestError) as raised:
        _copies(fakes, urls=[good, *refused, refused[1]])

    assert raised.value.reason == "the source policy refuses some of these URLs; nothing was recorded"
    assert [d.split(": ", 1)[0] for d in raised.value.details] == [
        "http://169.254.169.254/latest/meta-data/",
        "https://evil.example.com/x.png",
        "https://tempfile.aiquickdraw.com/a.png",  # canonical: the credentials are never echoed
    ]
    assert raised.value.details[0].endswith("source scheme 'http' is not allowed")
    assert all("u:p" not in d for d in raised.value.details)
    assert (fakes.ledger.tasks, fakes.queue.sent, fakes.store.objects) == ({}, [], {})


def test_copies_by_urls_queue_mode_records_and_queues_each_distinct_url(fakes: Fakes) -> None:
    urls = result_urls(TASK, ".png", ".mp4")

    doc = _copies(fakes, urls=[urls[0], urls[1], urls[0]])

    assert doc.family == "direct"
    assert doc.state == "pending"
    assert [(j.index, j.source, j.kind, j.family) for j in fakes.queue.sent] == [
        (0, urls[0], "image", "direct"),
        (1, urls[1], "video", "direct"),
    ]


def test_copies_by_urls_inline_mode_copies_in_the_request() -> None:
    fakes = make_fakes(inline=True)
    urls = result_urls(TASK, ".png", ".mp4")
    served = serve(fakes, urls)

    doc = _copies(fakes, urls=urls)

    assert doc.state == "copied"
    assert [f.url for f in doc.files] == [None, None]  # links only in GET /tasks
    assert [f.sha256 for f in doc.files] == [hashlib.sha256(served[u]).hexdigest() for u in urls]


def test_copies_without_a_family_keep_the_family_a_callback_recorded(fakes: Fakes) -> None:
    fakes.ledger.seed_task(TASK, "veo")
    assert _copies(fakes, urls=result_urls(TASK, ".mp4")).family == "veo"
    assert fakes.ledger.tasks[TASK].family == "veo"
    assert [j.family for j in fakes.queue.sent] == ["veo"]


def test_copies_naming_a_family_with_urls_records_it(fakes: Fakes) -> None:
    assert _copies(fakes, family="suno", urls=result_urls(TASK, ".mp3")).family == "suno"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({}, "give `urls`"),
        ({"family": "dalle"}, "unknown family 'dalle'; expected one of: "),
        ({"family": "dalle", "urls": ["https://tempfile.aiquickdraw.com/a.png"]}, "unknown family 'dalle'"),
        ({"family": "direct"}, "unknown family 'direct'"),
        ({"family": "unknown"}, "family 'unknown' has no record-info endpoint: give `urls`"),
    ],
)
def test_copies_bad_request_is_refused_before_kie_is_asked(
    fakes: Fakes, body: dict[str, object], reason: str
) -> None:
    with pytest.raises(BadRequestError) as raised:
        _copies(fakes, **body)
    assert reason in raised.value.reason
    assert fakes.trips.of("kie") == []
    assert fakes.ledger.tasks == {}


# -- by task id, from record-info --------------------------------------------------------------------------


def test_copies_by_task_id_records_what_record_info_lists(fakes: Fakes) -> None:
    urls = _finished(fakes, TASK, ".png", ".mp4")

    doc = _copies(fakes, family="market")

    assert [f.source for f in doc.files] == urls
    assert fakes.ledger.tasks[TASK].model == "nano-banana-pro"
    assert [j.source for j in fakes.queue.sent] == urls
    assert fakes.trips.of("kie") == [f"GET {MARKET_RECORD_INFO}"]


def test_copies_by_task_id_still_running_records_it_pending_and_copies_nothing(fakes: Fakes) -> None:
    _running(fakes, TASK)

    doc = _copies(fakes, family="market")

    assert (doc.state, doc.reason, doc.files) == ("pending", "waiting for kie.ai to finish (generating)", [])
    assert fakes.ledger.tasks[TASK].outcome is Outcome.NOT_FINAL
    assert fakes.queue.sent == []


def test_copies_by_task_id_kie_does_not_know_is_not_found(fakes: Fakes) -> None:
    with pytest.raises(NotFoundError, match=TASK):
        _copies(fakes, family="market")
    assert fakes.ledger.tasks == {}


def test_copies_by_task_id_record_of_an_unexpected_shape_is_upstream_error(fakes: Fakes) -> None:
    fakes.kie.records[(MARKET_RECORD_INFO, TASK)] = {"state": ["not", "a", "state"]}
    with pytest.raises(UpstreamError, match="market record of this task has an unexpected shape"):
        _copies(fakes, family="market")
    assert fakes.ledger.tasks == {}


# -- bulk --------------------------------------------------------------------------------------------------------


def _bulk(
    fakes: Fakes, *task_ids: str, deadline: float | None = None, family: str = "market"
) -> BulkCopyDocument:
    request = BulkCopyRequest.model_validate({"taskIds": list(task_ids), "family": family})
    return request_bulk_copies(fakes.services, request, deadline)


def test_copies_bulk_records_each_task_with_its_own_verdict(fakes: Fakes) -> None:
    rejected, throttled, finished, unknown, running = (f"task{n}" for n in range(5))
    fakes.kie.fail("record_info", error=KieRejectedError(401, "kie.ai refused the request (code 401)"))
    fakes.kie.fail("record_info")  # a passing fault (RetryableError), as for a 429
    urls = _finished(fakes, finished)
    _running(fakes, running)

    doc = _bulk(fakes, rejected, throttled, finished, unknown, running)

    assert [(t.task_id, t.state) for t in doc.tasks] == [(finished, "pending"), (running, "pending")]
    assert [f.source for f in doc.tasks[0].files] == urls
    assert doc.unknown == [unknown]
    assert [(e.task_id, e.retryable) for e in doc.errors] == [(rejected, False), (throttled, True)]
    assert "code 401" in doc.errors[0].message
    assert sorted(fakes.ledger.tasks) == [finished, running]
    assert [j.source for j in fakes.queue.sent] == urls


def test_copies_bulk_duplicate_ids_are_asked_once(fakes: Fakes) -> None:
    _finished(fakes, TASK)
    doc = _bulk(fakes, TASK, TASK, TASK)
    assert [t.task_id for t in doc.tasks] == [TASK]
    assert fakes.trips.of("kie") == [f"GET {MARKET_RECORD_INFO}"]


def test_copies_bulk_without_time_for_one_call_at_its_worst_asks_nothing(fakes: Fakes) -> None:
    first, second = "task1", "task2"
    _finished(fakes, first)
    _finished(fakes, second)
    needed = KIE_TIMEOUTS.worst_case_seconds + BULK_POLICY.reserve_seconds  # 20 s + 5 s

    doc = _bulk(fakes, first, second, deadline=time.monotonic() + needed - 1.0)

    assert doc.tasks == []
    assert [(e.task_id, e.processed, e.retryable) for e in doc.errors] == [
        (first, False, True),
        (second, False, True),
    ]
    assert doc.errors[0].message == NOT_PROCESSED
    assert fakes.trips.of("kie") == []
    assert fakes.ledger.tasks == {}


def test_copies_bulk_with_time_left_tries_every_task(fakes: Fakes) -> None:
    _finished(fakes, "task1")
    doc = _bulk(fakes, "task1", deadline=time.monotonic() + 60.0)
    assert [t.task_id for t in doc.tasks] == ["task1"]
    assert doc.errors == []


def test_copies_bulk_slow_record_info_stops_while_the_worst_case_still_fits(fakes: Fakes) -> None:
    ids = ["task1", "task2", "task3", "task4"]
    for task_id in ids:
        _finished(fakes, task_id)
        fakes.kie.latency[task_id] = 0.1  # a slow kie.ai, well within the client's timeouts
    fakes.kie.worst_case_seconds = 0.2
    fakes.with_(bulk=BulkPolicy(reserve_seconds=0.05))
    deadline = time.monotonic() + 0.3  # room for one call at its worst, and not for a second

    doc = _bulk(fakes, *ids, deadline=deadline)

    assert time.monotonic() <= deadline - 0.05
    assert [t.task_id for t in doc.tasks] == ["task1"]
    assert [(e.task_id, e.processed, e.retryable) for e in doc.errors] == [(t, False, True) for t in ids[1:]]
    assert fakes.trips.of("kie") == [f"GET {MARKET_RECORD_INFO}"]


class _Clock:
    """time.monotonic for logic/copies.py, moved on only by the fake kie.ai's answers."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


_OUTCOMES = st.sampled_from(["finished", "running", "unknown", "rejected", "throttled"])


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(
    tasks=st.lists(st.tuples(_OUTCOMES, st.floats(0.0, 1.0)), min_size=1, max_size=50),
    remaining=st.floats(0.0, 60.0),
)
def test_copies_bulk_answers_every_id_within_its_time_whatever_kie_ai_takes(
    tasks: list[tuple[str, float]], remaining: float
) -> None:
    """Each record-info call takes up to its worst case (a fraction of it, drawn per task): the
    answer comes before the deadline less the reserve, with one verdict for every id, and the ids
    not reached are a suffix of the request, never asked, not processed and retryable."""
    fakes, clock = make_fakes(), _Clock()
    worst, reserve = KIE_TIMEOUTS.worst_case_seconds, BULK_POLICY.reserve_seconds
    fakes.kie.sleep = clock.sleep
    ids = [f"task{n}" for n in range(len(tasks))]
    for task_id, (outcome, share) in zip(ids, tasks, strict=True):
        fakes.kie.latency[task_id] = share * worst
        if outcome == "finished":
            _finished(fakes, task_id)
        elif outcome == "running":
            _running(fakes, task_id)
        elif outcome != "unknown":
            _finished(fakes, task_id)
            fakes.kie.fail("record_info", error=_FAULTS[outcome])
    deadline = clock.now + remaining

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(copies, "time", clock)
        doc = _bulk(fakes, *ids, deadline=deadline)

    asked = len(fakes.trips.of("kie"))
    assert clock.now <= deadline - reserve or asked == 0
    verdicts = [t.task_id for t in doc.tasks] + doc.unknown + [e.task_id for e in doc.errors]
    assert sorted(verdicts) == sorted(ids)
    unreached = [e for e in doc.errors if not e.processed]
    assert [e.task_id for e in unreached] == ids[asked:]
    assert all(e.retryable and e.message == NOT_PROCESSED for e in unreached)
    assert asked >= (1 if remaining >= worst + reserve else 0)
    assert not {e.task_id for e in unreached} & {*fakes.ledger.tasks}


_FAULTS = {
    "rejected": KieRejectedError(401, "kie.ai refused the request (code 401)"),
    "throttled": RetryableError("kie.ai answered code 429"),
}


@pytest.mark.parametrize(
    ("family", "reason"), [("dalle", "unknown family 'dalle'"), ("unknown", "no record-info")]
)
def test_copies_bulk_family_without_record_info_asks_nothing(fakes: Fakes, family: str, reason: str) -> None:
    with pytest.raises(BadRequestError, match=reason):
        _bulk(fakes, TASK, family=family)
    assert fakes.trips.of("kie") == []


def test_copies_bulk_request_body_keeps_its_form() -> None:
    assert BulkCopyRequest.model_validate({"taskIds": ["a1", "b2", "a1"], "family": "market"}).task_ids == [
        "a1",
        "b2",
    ]
    with pytest.raises(ValueError, match="not both"):
        BulkCopyRequest.model_validate({"taskIds": ["a1"], "taskId": "a1", "family": "market"})
