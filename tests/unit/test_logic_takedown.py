"""take_down over the in-memory fakes: what it removes, what it keeps, and that nothing brings the task back."""

import threading
import time
from collections.abc import Sequence

import pytest
from devstack.callbacks import market_body
from tests.callback_requests import result_urls, serve, signed
from tests.fakes import Fakes, make_fakes

from kie2s3.adapters.ledger import TAKEN_DOWN, now_iso
from kie2s3.logic import takedown
from kie2s3.logic.copies import request_copies
from kie2s3.logic.plan import plan_files
from kie2s3.logic.receive import receive_callback
from kie2s3.logic.reconcile import reconcile
from kie2s3.logic.status import status_document
from kie2s3.logic.takedown import take_down
from kie2s3.models import CopyRequest, FileItem, SourceFile, TaskItem

TASK = "6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f"


@pytest.fixture
def fakes() -> Fakes:
    """A task archived inline: two files copied, its callback's raw body kept."""
    fakes = make_fakes(inline=True)
    urls = result_urls(TASK, ".png", ".mp4")
    serve(fakes, urls)
    assert receive_callback(fakes.services, signed(market_body(TASK, urls))).state == "copied"
    return fakes


def test_takedown_removes_files_callbacks_and_file_items(fakes: Fakes) -> None:
    (raw_key,) = fakes.store.raw_keys(f"kie/{TASK}/callbacks/")

    report = take_down(fakes.ledger, fakes.store, fakes.guard, "kie/", TASK)

    assert report.removed == [f"kie/{TASK}/00.png", f"kie/{TASK}/01.mp4", raw_key]
    assert (report.known, report.locked, report.waited_seconds < 1) == (True, {}, True)
    assert report.ledger_items == 4  # two file items and their two source markers
    assert fakes.store.objects == {}
    assert (fakes.ledger.files, fakes.ledger.sources) == ({}, {})
    task = fakes.ledger.tasks[TASK]
    assert (task.reason, task.taken_down_keys) == (TAKEN_DOWN, [f"kie/{TASK}/00.png", f"kie/{TASK}/01.mp4"])
    doc = status_document(fakes.services, TASK)
    assert (doc.state, doc.files, doc.reason) == ("ignored", [], TAKEN_DOWN)


def test_takedown_then_nothing_archives_the_task_again(fakes: Fakes) -> None:
    urls = result_urls(TASK, ".png", ".mp4")
    take_down(fakes.ledger, fakes.store, fakes.guard, "kie/", TASK)

    receive_callback(fakes.services, signed(market_body(TASK, urls)))  # kie.ai's retry
    request_copies(fakes.services, CopyRequest.model_validate({"taskId": TASK, "urls": urls}))
    reconcile(fakes.services)

    assert fakes.store.objects == {}
    assert fakes.ledger.files == {}
    assert status_document(fakes.services, TASK).state == "ignored"


def test_takedown_again_removes_the_keys_a_late_copy_stored(fakes: Fakes) -> None:
    take_down(fakes.ledger, fakes.store, fakes.guard, "kie/", TASK)
    late = f"kie/{TASK}/01.mp4"  # a copy that was running when the first takedown ran
    fakes.store.put_raw(late, b"late bytes")

    report = take_down(fakes.ledger, fakes.store, fakes.guard, "kie/", TASK)

    assert report.removed == [late]
    assert fakes.store.objects == {}


def test_takedown_waits_no_longer_than_the_lock_of_a_copy_killed_under_way() -> None:
    fakes = make_fakes()  # queue mode: the files stay pending
    receive_callback(fakes.services, signed(market_body(TASK, result_urls(TASK, ".png", ".mp4"))))
    # A copy opened, then its invocation was killed: nothing completes its record, its lock expires.
    fakes.records.save_inprogress({"task_id": TASK, "index": 1}, 300)
    slept: list[float] = []

    def nap(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    report = take_down(fakes.ledger, fakes.store, fakes.guard, "kie/", TASK, sleep=nap)

    assert 0.25 < sum(slept) <= 1.0  # until the lock's expiry, not a Lambda timeout
    assert report.ledger_items == 4
    assert fakes.ledger.files == {}


def test_takedown_fences_the_task_before_it_waits() -> None:
    fakes = make_fakes()
    receive_callback(fakes.services, signed(market_body(TASK, result_urls(TASK, ".png"))))
    fakes.records.save_inprogress({"task_id": TASK, "index": 0}, 60_000)
    fenced: list[bool] = []

    def look(seconds: float) -> None:
        fenced.append(fakes.ledger.is_taken_down(TASK))
        fakes.records.records.clear()

    take_down(fakes.ledger, fakes.store, fakes.guard, "kie/", TASK, sleep=look)
    assert fenced == [True]


def test_takedown_of_a_task_not_yet_recorded_fences_it() -> None:
    fakes = make_fakes()
    report = take_down(fakes.ledger, fakes.store, fakes.guard, "kie/", TASK, sleep=lambda _: None)
    assert (report.known, report.removed, report.ledger_items) == (False, [], 0)
    assert fakes.ledger.is_taken_down(TASK)

    receive_callback(fakes.services, signed(market_body(TASK, result_urls(TASK, ".png"))))

    assert fakes.queue.sent == []
    assert [f for (t, _), f in fakes.ledger.files.items() if t == TASK] == []
    assert fakes.store.raw_keys(f"kie/{TASK}/") == []


def test_takedown_racing_a_plan_leaves_no_file_items() -> None:
    """A replayed callback's plan reads the task before the takedown's fence, and writes its file
    items after the takedown removed the task's: that write checks the fence too."""
    fakes = make_fakes()
    fakes.ledger.seed_task(TASK)
    reads = fakes.ledger.get

    def read_then_take_down(task_id: str) -> tuple[TaskItem, list[FileItem]] | None:
        found = reads(task_id)
        fakes.ledger.get = reads  # type: ignore[method-assign]  # the plan's read only
        take_down(fakes.ledger, fakes.store, fakes.guard, "kie/", TASK)
        return found

    fakes.ledger.get = read_then_take_down  # type: ignore[method-assign]
    files = [SourceFile(url=u, kind="image") for u in result_urls(TASK, ".png", ".jpg")]

    assert plan_files(fakes.services, TASK, "market", files) == []
    assert fakes.ledger.is_taken_down(TASK)
    assert (fakes.ledger.files, fakes.ledger.sources) == ({}, {})


def test_takedown_removes_its_callbacks_never_another_tasks_files() -> None:
    """With a placeholder before {taskId}, task `callbacks` of family `market` keeps its files in
    `kie/market/callbacks/`: the folder of task `market`'s raw callbacks. Taking `market` down
    removes its callback bodies, not the other task's archive."""
    fakes = make_fakes(inline=True, env={"KEY_TEMPLATE": "{prefix}{family}/{taskId}/{index}{ext}"})
    other = "callbacks"
    urls = result_urls(other, ".png")
    serve(fakes, urls)
    request = CopyRequest.model_validate({"taskId": other, "family": "market", "urls": urls})
    assert request_copies(fakes.services, request).state == "copied"
    kept = set(fakes.store.objects)
    assert kept == {"kie/market/callbacks/00.png"}
    receive_callback(fakes.services, signed(market_body("market", [], state="fail")))
    (raw_key,) = set(fakes.store.objects) - kept

    report = take_down(fakes.ledger, fakes.store, fakes.guard, "kie/", "market")

    assert report.removed == [raw_key]
    assert set(fakes.store.objects) == kept
    assert status_document(fakes.services, other).state == "copied"


def test_takedown_waits_for_and_removes_a_file_recorded_just_before_its_fence() -> None:
    """A delivery records a new file and opens its copy between the takedown's first read and its
    fence: the takedown knows the task's files as they are once fenced, waits for that copy and
    removes what it stored."""
    fakes = make_fakes()
    receive_callback(fakes.services, signed(market_body(TASK, result_urls(TASK, ".png"))))
    late = f"kie/{TASK}/01.mp4"
    mark = fakes.ledger.mark_taken_down

    def record_and_open_then_mark(task_id: str, keys: Sequence[str]) -> bool:
        (url,) = result_urls(TASK, ".mp4")
        item = FileItem(task_id=TASK, index=1, source=url, kind="video", key=late, updated_at=now_iso())
        fakes.ledger.seed_file(item)
        fakes.records.save_inprogress({"task_id": TASK, "index": 1}, 60_000)
        fakes.ledger.mark_taken_down = mark  # type: ignore[method-assign]  # the race happens once
        return mark(task_id, keys)

    fakes.ledger.mark_taken_down = record_and_open_then_mark  # type: ignore[method-assign]
    waited: list[float] = []

    def copy_ends(seconds: float) -> None:  # the copy stores its object and completes its record
        waited.append(seconds)
        fakes.store.put_raw(late, b"video bytes")
        fakes.records.records.clear()

    take_down(fakes.ledger, fakes.store, fakes.guard, "kie/", TASK, sleep=copy_ends)

    assert len(waited) == 1
    assert fakes.store.objects == {}
    assert fakes.ledger.files == {}
    assert late in fakes.ledger.tasks[TASK].taken_down_keys


def test_takedown_removes_the_body_of_a_callback_that_checked_before_its_fence(
    fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kie.ai's retry of a callback reads the task before the fence, and archives its body only
    after (a slow PutObject): the takedown waits out callbacks in flight, then removes the body."""
    monkeypatch.setattr(takedown, "CALLBACK_GRACE_SECONDS", 30.0)
    checked, go_on = threading.Event(), threading.Event()
    check = fakes.ledger.taken_down

    def check_then_stall(task_id: str) -> bool:
        found = check(task_id)
        checked.set()
        go_on.wait(5)
        return found

    fakes.ledger.taken_down = check_then_stall  # type: ignore[method-assign]
    retry = threading.Thread(
        target=receive_callback,
        args=(fakes.services, signed(market_body(TASK, result_urls(TASK, ".png"), state="fail"))),
    )
    retry.start()
    assert checked.wait(5)
    slept: list[float] = []

    def callbacks_end(seconds: float) -> None:
        slept.append(seconds)
        go_on.set()
        retry.join(5)

    take_down(fakes.ledger, fakes.store, fakes.guard, "kie/", TASK, sleep=callbacks_end)
    go_on.set()
    retry.join(5)

    assert 29 < sum(slept) <= 30
    assert fakes.store.raw_keys(f"kie/{TASK}/callbacks/") == []
