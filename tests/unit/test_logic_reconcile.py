"""The reconciler over the in-memory fakes: stale files re-sent, running tasks followed and closed,
unrecognised callbacks replayed, stale multipart uploads aborted."""

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from devstack.callbacks import market_body
from tests.callback_requests import result_urls, sample, serve
from tests.fakes import Fakes, make_fakes

from kie2s3.adapters.ledger import OPEN_TASK, TAKEN_DOWN
from kie2s3.families import task_id_of
from kie2s3.logic.plan import raw_callback_key
from kie2s3.logic.reconcile import reconcile
from kie2s3.logic.status import status_document
from kie2s3.logic.takedown import take_down
from kie2s3.models import FileItem, FileState, Outcome, TaskItem

TASK = "0f9e8d7c6b5a4e3d2c1b0a9f8e7d6c5b"
MARKET_RECORD_INFO = "/api/v1/jobs/recordInfo"
EXPIRED = "expired at kie.ai (14-day retention)"


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


@pytest.fixture
def start() -> datetime:
    """The pass's `now`: the time of the test (items the fakes touch carry the real clock)."""
    return datetime.now(UTC)


@pytest.fixture
def fakes() -> Fakes:
    return make_fakes()


def _task(
    fakes: Fakes, start: datetime, outcome: Outcome = Outcome.SUCCESS, *, task_id: str = TASK, family: str = "market",
    age: timedelta = timedelta(hours=1), idle: timedelta = timedelta(minutes=6),
) -> TaskItem:  # fmt: skip
    """A task recorded `age` ago and last updated `idle` ago, as the ledger's save_task leaves it."""
    task = TaskItem(
        task_id=task_id,
        family=family,
        outcome=outcome,
        reason="waiting" if outcome is Outcome.NOT_FINAL else None,
        created_at=_iso(start - age),
        updated_at=_iso(start - idle),
    )
    fakes.ledger.save_task(task)
    return fakes.ledger.tasks[task_id]


def _file(fakes: Fakes, start: datetime, index: int, state: FileState, idle_minutes: int = 31) -> FileItem:
    source = result_urls(TASK, *[".png"] * (index + 1))[index]
    return fakes.ledger.seed_file(
        FileItem(
            task_id=TASK,
            index=index,
            source=source,
            source_url=f"{source}?sig={index}",
            kind="image",
            key=f"kie/{TASK}/{index:02d}.png",
            state=state,
            updated_at=_iso(start - timedelta(minutes=idle_minutes)),
        )
    )


# -- stale files -------------------------------------------------------------------------------------


def test_reconcile_resends_files_stuck_over_30_minutes_with_their_full_url(
    fakes: Fakes, start: datetime
) -> None:
    _task(fakes, start)
    pending, copying = _file(fakes, start, 0, "pending"), _file(fakes, start, 1, "copying")
    _file(fakes, start, 2, "pending", idle_minutes=29)
    _file(fakes, start, 3, "copied")
    _file(fakes, start, 4, "failed")

    report = reconcile(fakes.services, now=start)

    assert report.resent == [f"{TASK}#0", f"{TASK}#1"]
    assert [(j.index, j.source, j.key) for j in fakes.queue.sent] == [
        (0, pending.source_url, pending.key),
        (1, copying.source_url, copying.key),
    ]
    for index, state in [(0, "pending"), (1, "copying")]:  # touched, state unchanged
        item = fakes.ledger.files[(TASK, index)]
        assert (item.state, item.updated_at > _iso(start - timedelta(seconds=5))) == (state, True)


def test_reconcile_resent_file_waits_its_turn_again(fakes: Fakes, start: datetime) -> None:
    _task(fakes, start)
    _file(fakes, start, 0, "pending")
    reconcile(fakes.services, now=start)

    assert reconcile(fakes.services, now=start).resent == []
    assert reconcile(fakes.services, now=start + timedelta(minutes=31)).resent == [f"{TASK}#0"]
    assert [j.index for j in fakes.queue.sent] == [0, 0]


def test_reconcile_inline_mode_copies_the_stuck_file_in_the_pass(start: datetime) -> None:
    fakes = make_fakes(inline=True)
    _task(fakes, start)
    item = _file(fakes, start, 0, "pending")
    served = serve(fakes, [item.source])

    assert reconcile(fakes.services, now=start).resent == [f"{TASK}#0"]

    copied = fakes.ledger.files[(TASK, 0)]
    assert (copied.state, copied.sha256) == ("copied", hashlib.sha256(served[item.source]).hexdigest())
    assert fakes.store.objects[item.key].body == served[item.source]


def test_reconcile_file_of_a_task_past_kie_retention_is_failed_not_resent(
    fakes: Fakes, start: datetime
) -> None:
    _task(fakes, start, age=timedelta(days=14, minutes=1))
    _file(fakes, start, 0, "pending")

    report = reconcile(fakes.services, now=start)

    assert (report.expired, report.resent, fakes.queue.sent) == ([f"{TASK}#0"], [], [])
    item = fakes.ledger.files[(TASK, 0)]
    assert (item.state, item.error) == ("failed", EXPIRED)


def test_reconcile_file_without_its_task_is_failed_not_resent(fakes: Fakes, start: datetime) -> None:
    _file(fakes, start, 0, "copying")

    assert reconcile(fakes.services, now=start).expired == [f"{TASK}#0"]
    assert fakes.ledger.files[(TASK, 0)].state == "failed"
    assert fakes.queue.sent == []


# -- running tasks ---------------------------------------------------------------------------------


def _record_info(state: str, task_id: str = TASK) -> dict[str, object]:
    data = market_body(task_id, result_urls(task_id, ".png", ".mp4"), model="veo3")["data"]
    return {**data, "state": state, "resultJson": data["resultJson"] if state == "success" else None}


def test_reconcile_completes_a_task_kie_has_finished(fakes: Fakes, start: datetime) -> None:
    _task(fakes, start, Outcome.NOT_FINAL)
    fakes.kie.records[(MARKET_RECORD_INFO, TASK)] = _record_info("success")

    report = reconcile(fakes.services, now=start)

    assert report.completed_tasks == [TASK]
    task = fakes.ledger.tasks[TASK]
    assert (task.outcome, task.model, task.file_count) == (Outcome.SUCCESS, "veo3", 2)
    assert TASK not in fakes.ledger.open_tasks
    assert [(j.index, j.source) for j in fakes.queue.sent] == list(
        enumerate(result_urls(TASK, ".png", ".mp4"))
    )


def test_reconcile_task_still_running_is_asked_again_later(fakes: Fakes, start: datetime) -> None:
    _task(fakes, start, Outcome.NOT_FINAL)
    fakes.kie.records[(MARKET_RECORD_INFO, TASK)] = _record_info("generating")

    assert reconcile(fakes.services, now=start).still_running == [TASK]
    assert reconcile(fakes.services, now=start).still_running == []  # touched: not asked twice in 5 minutes

    assert fakes.kie.trips.of("kie") == [f"GET {MARKET_RECORD_INFO}"]
    assert (fakes.ledger.tasks[TASK].outcome, TASK in fakes.ledger.open_tasks) == (Outcome.NOT_FINAL, True)


def test_reconcile_task_asked_about_within_5_minutes_is_left_alone(fakes: Fakes, start: datetime) -> None:
    _task(fakes, start, Outcome.NOT_FINAL, idle=timedelta(minutes=4))
    assert reconcile(fakes.services, now=start).still_running == []
    assert fakes.trips.of("kie") == []


def test_reconcile_kie_fault_on_one_task_does_not_stop_the_pass(fakes: Fakes, start: datetime) -> None:
    other = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"
    _task(fakes, start, Outcome.NOT_FINAL, idle=timedelta(minutes=7))
    _task(fakes, start, Outcome.NOT_FINAL, task_id=other)
    fakes.kie.records[(MARKET_RECORD_INFO, other)] = _record_info("success", other)
    fakes.kie.fail("record_info")

    report = reconcile(fakes.services, now=start)

    assert report.errors == [f"{TASK}: kie record_info failed (injected)"]
    assert report.completed_tasks == [other]
    assert (fakes.ledger.tasks[TASK].outcome, TASK in fakes.ledger.open_tasks) == (Outcome.NOT_FINAL, True)
    assert fakes.ledger.tasks[TASK].updated_at > _iso(start - timedelta(seconds=5))  # tried again next time


def test_reconcile_task_kie_no_longer_keeps_is_closed_as_expired(fakes: Fakes, start: datetime) -> None:
    _task(fakes, start, Outcome.NOT_FINAL, age=timedelta(days=15))

    assert reconcile(fakes.services, now=start).expired == [TASK]

    assert (fakes.ledger.tasks[TASK].reason, TASK in fakes.ledger.open_tasks) == (EXPIRED, False)
    assert fakes.trips.of("kie") == []


def test_reconcile_task_of_a_family_without_record_info_is_closed(fakes: Fakes, start: datetime) -> None:
    _task(fakes, start, Outcome.NOT_FINAL, family="retired")

    assert reconcile(fakes.services, now=start).expired == [TASK]

    assert fakes.ledger.tasks[TASK].reason == "no record-info for family 'retired'"
    assert TASK not in fakes.ledger.open_tasks


def test_reconcile_closing_a_task_taken_down_meanwhile_keeps_its_takedown(
    fakes: Fakes, start: datetime
) -> None:
    """The pass lists a task still open, then a takedown fences it before the pass closes it as
    expired: the task keeps reading `taken down`."""
    _task(fakes, start, Outcome.NOT_FINAL, age=timedelta(days=15))
    listed = fakes.ledger.open_items

    def list_then_take_down(kind: str, updated_before: str, limit: int = 100) -> list[dict[str, Any]]:
        found = listed(kind, updated_before, limit)
        if kind == OPEN_TASK:
            take_down(fakes.ledger, fakes.store, fakes.guard, "kie/", TASK)
        return found

    fakes.ledger.open_items = list_then_take_down  # type: ignore[method-assign]

    reconcile(fakes.services, now=start)

    task = fakes.ledger.tasks[TASK]
    assert (task.reason, task.taken_down_at is not None) == (TAKEN_DOWN, True)
    assert status_document(fakes.services, TASK).reason == TAKEN_DOWN


# -- replay of unrecognised callbacks --------------------------------------------------------------------


def _archive(fakes: Fakes, task_id: str, raw: bytes, at_ms: int, hint: str | None = None) -> str:
    key = raw_callback_key("kie/", task_id, at_ms, hashlib.sha256(raw).hexdigest())
    fakes.store.put_raw(key, raw, family_hint=hint)
    return key


def test_reconcile_replays_an_unrecognised_task_a_parser_now_knows(fakes: Fakes, start: datetime) -> None:
    body = sample("callback-veo4k-success-hinted")
    task_id = task_id_of(body)
    _task(fakes, start, Outcome.UNRECOGNISED, task_id=task_id, family="unknown")
    _archive(fakes, task_id, json.dumps(body).encode(), 1, hint="veo4k")

    report = reconcile(fakes.services, now=start)

    assert (report.replayed, report.still_unrecognised) == ([task_id], [])
    task = fakes.ledger.tasks[task_id]
    assert (task.outcome, task.family, task_id in fakes.ledger.open_tasks) == (
        Outcome.SUCCESS,
        "veo4k",
        False,
    )
    assert [(j.family, j.source) for j in fakes.queue.sent] == [
        ("veo4k", body["data"]["info"]["resultUrls"][0])
    ]


def test_reconcile_replay_takes_the_newest_body_it_recognises(fakes: Fakes, start: datetime) -> None:
    _task(fakes, start, Outcome.UNRECOGNISED, family="unknown")
    old, new = result_urls(TASK, ".png", ".mp4")
    _archive(fakes, TASK, json.dumps(market_body(TASK, [old])).encode(), 1)
    _archive(fakes, TASK, json.dumps(market_body(TASK, [new])).encode(), 2)
    _archive(fakes, TASK, b'{"data": {"taskId": "%s", "outputs": []}}' % TASK.encode(), 3)  # still unknown

    assert reconcile(fakes.services, now=start).replayed == [TASK]
    assert [j.source for j in fakes.queue.sent] == [new]


def test_reconcile_replay_reads_no_other_tasks_file_in_the_callbacks_folder(
    fakes: Fakes, start: datetime
) -> None:
    """Under `{prefix}{family}/{taskId}/…`, task `callbacks`'s files lie in task `market`'s
    callbacks folder: a replay of `market` reads its own bodies only (a video read whole would
    exhaust the reconciler's memory)."""
    _task(fakes, start, Outcome.UNRECOGNISED, task_id="market", family="unknown")
    fakes.store.put_raw("kie/market/callbacks/99.mp4", b"a video of task callbacks")
    raw = json.dumps(market_body("market", result_urls("market", ".png"))).encode()
    own = _archive(fakes, "market", raw, 1)
    fakes.trips.clear()
    read: list[str] = []
    get_raw = fakes.store.get_raw

    def reading(key: str) -> tuple[bytes, str | None]:
        read.append(key)
        return get_raw(key)

    fakes.store.get_raw = reading  # type: ignore[method-assign]

    assert reconcile(fakes.services, now=start).replayed == ["market"]
    assert read == [own]


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(market_body("another0task", ["https://tempfile.aiquickdraw.com/p/x.png"])).encode(),
        b"not json",
        b'{"data": {"taskId": "%s", "outputs": [1]}}' % TASK.encode(),
    ],
    ids=["other-task", "not-json", "still-unknown"],
)
def test_reconcile_replay_without_a_usable_body_leaves_the_task_unrecognised(
    fakes: Fakes, start: datetime, raw: bytes
) -> None:
    _task(fakes, start, Outcome.UNRECOGNISED, family="unknown")
    _archive(fakes, TASK, raw, 1)

    report = reconcile(fakes.services, now=start)

    assert (report.replayed, report.still_unrecognised) == ([], [TASK])
    assert (fakes.ledger.tasks[TASK].outcome, TASK in fakes.ledger.open_tasks) == (Outcome.UNRECOGNISED, True)
    assert "another0task" not in fakes.ledger.tasks
    assert fakes.queue.sent == []


def test_reconcile_replay_store_fault_is_reported_and_retried_later(fakes: Fakes, start: datetime) -> None:
    _task(fakes, start, Outcome.UNRECOGNISED, family="unknown")
    fakes.store.fail("raw_keys")

    report = reconcile(fakes.services, now=start)

    assert report.errors == [f"{TASK}: s3 raw_keys failed (injected)"]
    assert report.still_unrecognised == [TASK]


# -- stale multipart uploads -------------------------------------------------------------------------------


def _upload(fakes: Fakes, key: str, age: timedelta) -> None:
    upload = fakes.store.multipart_upload(key, content_type="image/png", metadata={})
    upload.create()
    upload.initiated = datetime.now(UTC) - age


def test_reconcile_aborts_uploads_under_the_prefix_begun_over_a_day_ago(
    fakes: Fakes, start: datetime
) -> None:
    _upload(fakes, "kie/t1/00.png", timedelta(days=1, minutes=1))
    _upload(fakes, "kie/t2/00.png", timedelta(hours=23))
    _upload(fakes, "other/t3/00.png", timedelta(days=3))

    assert reconcile(fakes.services, now=start).aborted_uploads == ["kie/t1/00.png"]
    assert sorted(u.key for u in fakes.store.incomplete_uploads) == ["kie/t2/00.png", "other/t3/00.png"]


def test_reconcile_without_an_object_prefix_aborts_no_upload(start: datetime) -> None:
    fakes = make_fakes(env={"OBJECT_PREFIX": ""})
    _upload(fakes, "t1/00.png", timedelta(days=3))

    report = reconcile(fakes.services, now=start)

    assert (report.aborted_uploads, report.errors) == ([], [])
    assert fakes.trips.of("s3").count("ListMultipartUploads") == 0
    assert len(fakes.store.incomplete_uploads) == 1


def test_reconcile_upload_listing_fault_is_reported(fakes: Fakes, start: datetime) -> None:
    _task(fakes, start)
    _file(fakes, start, 0, "pending")
    fakes.store.fail("abort_stale_uploads")

    report = reconcile(fakes.services, now=start)

    assert report.errors == ["stale uploads: s3 abort_stale_uploads failed (injected)"]
    assert report.resent == [f"{TASK}#0"]
