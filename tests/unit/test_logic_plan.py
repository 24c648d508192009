"""Planning over the in-memory fakes: the copy job builder, one item per source, re-plan rounds,
the safety net's filter, and dispatch in each copy mode."""

import hashlib
from collections.abc import Sequence

import pytest
from tests.callback_requests import result_urls, serve
from tests.fakes import Fakes, make_fakes

from kie2s3.errors import RetryableError
from kie2s3.logic import plan
from kie2s3.logic.plan import accept, copy_job, dispatch, plan_files
from kie2s3.media import kind_of
from kie2s3.models import FileItem, Outcome, ParsedCallback, SourceFile, TaskItem

TASK = "5d2f0c7e9a1b4c3d8e6f1a2b3c4d5e6f"


@pytest.fixture
def fakes() -> Fakes:
    return make_fakes()


@pytest.fixture(autouse=True)
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-plan rounds without their jittered pause (the rounds are under test, not the pause)."""
    monkeypatch.setattr(plan, "_PLAN_PAUSE_SECONDS", 0.0)


def _files(*urls: str, found_by: str = "parser") -> tuple[SourceFile, ...]:
    return tuple(
        SourceFile.model_validate({"url": u, "kind": kind_of(u), "found_by": found_by}) for u in urls
    )


def _item(index: int, source: str, **fields: object) -> FileItem:
    return FileItem.model_validate(
        {
            "task_id": TASK,
            "index": index,
            "source": source,
            "kind": kind_of(source),
            "key": f"kie/{TASK}/{index:02d}.png",
            "updated_at": "2026-11-01T00:00:00.000+00:00",
            **fields,
        }
    )


def _items(fakes: Fakes) -> list[FileItem]:
    """The task's file items, in index order (no request logged)."""
    return sorted((f for (t, _), f in fakes.ledger.files.items() if t == TASK), key=lambda f: f.index)


def _ledger_files(fakes: Fakes) -> list[tuple[int, str, str]]:
    return [(f.index, f.source, f.state) for f in _items(fakes)]


# -- the copy job builder -----------------------------------------------------------------------------


def test_copy_job_takes_the_full_url_family_and_model() -> None:
    task = TaskItem(
        task_id=TASK, family="market", outcome=Outcome.SUCCESS, model="veo3", created_at="x", updated_at="x"
    )
    item = _item(
        3,
        "https://tempfile.aiquickdraw.com/p/a.png",
        source_url="https://tempfile.aiquickdraw.com/p/a.png?sig=1",
    )

    job = copy_job(item, task)

    assert job.model_dump() == {
        "task_id": TASK,
        "index": 3,
        "source": "https://tempfile.aiquickdraw.com/p/a.png?sig=1",
        "kind": "image",
        "family": "market",
        "key": f"kie/{TASK}/03.png",
        "model": "veo3",
    }


def test_copy_job_of_an_item_without_a_full_url_copies_its_source() -> None:
    task = TaskItem(task_id=TASK, family="suno", outcome=Outcome.SUCCESS, created_at="x", updated_at="x")
    job = copy_job(_item(0, "https://tempfile.aiquickdraw.com/p/a.mp3"), task)
    assert (job.source, job.family, job.model) == ("https://tempfile.aiquickdraw.com/p/a.mp3", "suno", None)


# -- plan_files ---------------------------------------------------------------------------------------------


def test_plan_new_sources_are_indexed_after_the_highest_known(fakes: Fakes) -> None:
    old, new = result_urls(TASK, ".png", ".mp4")
    fakes.ledger.seed_task(TASK)
    fakes.ledger.seed_file(_item(4, old, state="copied"))

    jobs = plan_files(fakes.services, TASK, "market", _files(new, old))

    assert [(j.index, j.source, j.key) for j in jobs] == [(5, new, f"kie/{TASK}/05.mp4")]
    assert _ledger_files(fakes) == [(4, old, "copied"), (5, new, "pending")]


def test_plan_keys_come_from_the_template_and_the_task_recorded() -> None:
    fakes = make_fakes(env={"KEY_TEMPLATE": "{prefix}{family}/{model}/{taskId}/{index}{ext}"})
    fakes.ledger.seed_task(TASK, model="first-model")
    (url,) = result_urls(TASK, ".png")

    (job,) = plan_files(fakes.services, TASK, "market", _files(url))

    assert job.key == f"kie/market/first-model/{TASK}/00.png"


def test_plan_failed_file_is_planned_again_from_the_url_given_now(fakes: Fakes) -> None:
    (url,) = result_urls(TASK, ".png")
    fakes.ledger.seed_task(TASK)
    fakes.ledger.seed_file(_item(0, url, source_url=url + "?v=1", state="failed", error="gone"))

    (job,) = plan_files(fakes.services, TASK, "market", _files(url + "?v=2"))

    assert (job.index, job.source) == (0, url + "?v=2")
    item = fakes.ledger.files[(TASK, 0)]
    assert (item.state, item.error, item.source_url, item.source) == ("pending", None, url + "?v=2", url)


@pytest.mark.parametrize("state", ["pending", "copying", "copied"])
def test_plan_known_file_not_failed_gets_no_second_job(fakes: Fakes, state: str) -> None:
    (url,) = result_urls(TASK, ".png")
    fakes.ledger.seed_task(TASK)
    fakes.ledger.seed_file(_item(0, url, state=state))

    assert plan_files(fakes.services, TASK, "market", _files(url)) == []
    assert _ledger_files(fakes) == [(0, url, state)]


def test_plan_refused_source_is_recorded_failed_and_stays_failed(fakes: Fakes) -> None:
    evil = "https://evil.example.com/x.png"
    fakes.ledger.seed_task(TASK)
    assert plan_files(fakes.services, TASK, "market", _files(evil)) == []
    assert plan_files(fakes.services, TASK, "market", _files(evil)) == []
    (item,) = _items(fakes)
    assert (item.state, item.index) == ("failed", 0)
    assert item.error is not None
    assert "evil.example.com" in item.error


def test_plan_index_claimed_by_a_racing_delivery_is_planned_again_after_it(
    fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, theirs = result_urls(TASK, ".png", ".mp4")
    fakes.ledger.seed_task(TASK)
    add_files = fakes.ledger.add_files
    rounds: list[list[int]] = []

    def racing(items: Sequence[FileItem]) -> int:
        if not rounds:  # a concurrent delivery creates index 0 between our read and our write
            fakes.ledger.seed_file(_item(0, theirs))
        rounds.append([i.index for i in items])
        return add_files(items)

    monkeypatch.setattr(fakes.ledger, "add_files", racing)

    (job,) = plan_files(fakes.services, TASK, "market", _files(ours))

    assert rounds == [[0], [1]]
    assert (job.index, job.source) == (1, ours)
    assert _ledger_files(fakes) == [(0, theirs, "pending"), (1, ours, "pending")]


def test_plan_source_claimed_by_a_racing_delivery_gets_no_job_here(
    fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    (url,) = result_urls(TASK, ".png")
    fakes.ledger.seed_task(TASK)
    add_files = fakes.ledger.add_files

    def racing(items: Sequence[FileItem]) -> int:
        if (TASK, 0) not in fakes.ledger.files:  # the same source, recorded by the other delivery
            fakes.ledger.seed_file(_item(0, url))
        return add_files(items)

    monkeypatch.setattr(fakes.ledger, "add_files", racing)

    assert plan_files(fakes.services, TASK, "market", _files(url)) == []  # the other delivery sends it
    assert _ledger_files(fakes) == [(0, url, "pending")]


def test_plan_sends_the_jobs_of_files_an_earlier_round_wrote_in_part(
    fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """50 files take two transactions (each checks the task's fence): when a racing delivery claims
    an index of the second, the first's 49 files are this delivery's, and still get their jobs."""
    ours = [f"https://tempfile.aiquickdraw.com/p/{TASK}-{n}.png" for n in range(50)]
    theirs = f"https://tempfile.aiquickdraw.com/p/{TASK}-theirs.png"
    fakes.ledger.seed_task(TASK)
    add_files = fakes.ledger.add_files

    def racing(items: Sequence[FileItem]) -> int:
        if (TASK, 49) not in fakes.ledger.files:
            fakes.ledger.seed_file(_item(49, theirs))
        return add_files(items)

    monkeypatch.setattr(fakes.ledger, "add_files", racing)

    jobs = plan_files(fakes.services, TASK, "market", _files(*ours))

    assert sorted((j.index, j.source) for j in jobs) == [
        *((n, ours[n]) for n in range(49)),
        (50, ours[49]),
    ]
    assert len(_items(fakes)) == 51


def test_plan_gives_up_retryably_when_every_round_is_raced(
    fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fakes.ledger, "add_files", lambda items: 0)
    with pytest.raises(RetryableError, match="concurrently"):
        plan_files(fakes.services, TASK, "market", _files(*result_urls(TASK, ".png")))
    assert fakes.trips.of("ledger") == ["Query"] * 10
    assert fakes.ledger.files == {}


def test_plan_task_taken_down_plans_nothing(fakes: Fakes) -> None:
    fakes.ledger.seed_task(TASK)
    fakes.ledger.mark_taken_down(TASK, [])
    fakes.trips.clear()

    assert plan_files(fakes.services, TASK, "market", _files(*result_urls(TASK, ".png"))) == []
    assert fakes.trips.of("ledger") == ["Query"]
    assert fakes.ledger.files == {}


# -- accept: the safety net's files, the record -------------------------------------------------------------


def _parsed(files: tuple[SourceFile, ...], outcome: Outcome = Outcome.SUCCESS) -> ParsedCallback:
    return ParsedCallback(task_id=TASK, family="market", outcome=outcome, files=files, model="m")


def test_accept_net_files_on_refused_hosts_are_dropped(fakes: Fakes) -> None:
    good = result_urls(TASK, ".mp3")[0]
    recorded = accept(fakes.services, _parsed(_files(good, "https://evil.example/x.mp3", found_by="net")))
    assert [f.url for f in recorded.files] == [good]
    assert _ledger_files(fakes) == [(0, good, "pending")]
    assert _items(fakes)[0].found_by == "net"


def test_accept_parser_files_on_refused_hosts_are_kept_and_failed(fakes: Fakes) -> None:
    evil = "https://evil.example/x.mp3"
    recorded = accept(fakes.services, _parsed(_files(evil)))
    assert [f.url for f in recorded.files] == [evil]
    assert _ledger_files(fakes) == [(0, evil, "failed")]


def test_accept_net_result_left_without_files_is_unrecognised(fakes: Fakes) -> None:
    recorded = accept(fakes.services, _parsed(_files("https://evil.example/x.mp3", found_by="net")))

    assert (recorded.outcome, recorded.files) == (Outcome.UNRECOGNISED, ())
    task = fakes.ledger.tasks[TASK]
    assert (task.outcome, task.file_count) == (Outcome.UNRECOGNISED, 0)
    assert task.reason is not None
    assert "archived for replay" in task.reason
    assert fakes.ledger.files == {}
    assert fakes.queue.sent == []


@pytest.mark.parametrize("outcome", [Outcome.FAILED, Outcome.NOT_FINAL, Outcome.NO_FILES])
def test_accept_outcome_other_than_success_records_the_task_only(fakes: Fakes, outcome: Outcome) -> None:
    accept(fakes.services, ParsedCallback(task_id=TASK, family="market", outcome=outcome, reason="why"))
    task = fakes.ledger.tasks[TASK]
    assert (task.outcome, task.reason, task.model) == (outcome, "why", None)
    assert fakes.ledger.files == {}
    assert fakes.queue.sent == []


# -- dispatch -------------------------------------------------------------------------------------------


def _recorded(fakes: Fakes, *suffixes: str) -> list[str]:
    urls = result_urls(TASK, *suffixes)
    fakes.ledger.seed_task(TASK)
    fakes.ledger.add_files([_item(n, url, source_url=url) for n, url in enumerate(urls)])
    return urls


def test_dispatch_queue_mode_sends_the_jobs_in_batches_of_ten(fakes: Fakes) -> None:
    urls = _recorded(fakes, *[".png"] * 12)
    task = fakes.ledger.tasks[TASK]
    jobs = [copy_job(f, task) for f in _items(fakes)]
    fakes.trips.clear()

    dispatch(fakes.services, jobs)

    assert [j.source for j in fakes.queue.sent] == urls
    assert fakes.trips.log == [("sqs", "SendMessageBatch")] * 2


def test_dispatch_nothing_to_send_sends_nothing(fakes: Fakes) -> None:
    dispatch(fakes.services, [])
    assert fakes.trips.log == []


def test_dispatch_inline_a_failing_copy_leaves_the_others_copied() -> None:
    fakes = make_fakes(inline=True)
    missing, present = _recorded(fakes, ".png", ".mp4")
    served = serve(fakes, [present])
    task = fakes.ledger.tasks[TASK]
    jobs = [copy_job(f, task) for f in _items(fakes)]

    dispatch(fakes.services, jobs)  # the 404 is recorded, not raised

    first, second = _items(fakes)
    assert (first.source, first.state) == (missing, "failed")
    assert first.error is not None
    assert "404" in first.error
    assert first.key not in fakes.store.objects
    assert (second.state, second.sha256) == ("copied", hashlib.sha256(served[present]).hexdigest())
    assert fakes.store.objects[second.key].body == served[present]
