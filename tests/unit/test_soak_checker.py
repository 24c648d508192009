"""The soak's checker: a consistent history passes every invariant, and each deliberately broken one
fails the invariant that guards it (so a green soak means something)."""

import dataclasses
import hashlib
import json
from typing import Any

import pytest
from devstack.soak.checker import CallbackAnswer, History, Source, StoredObject, check, report

from kie2s3.logic.outbox import _event, _file_event
from kie2s3.logic.status import document
from kie2s3.models import FileItem, Outcome, TaskItem

NOW = "2026-12-07T23:00:00.000+00:00"
PREFIX = "kie/"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _event_dict(detail_type: str, detail: str) -> dict[str, Any]:
    return {"source": "kie2s3", "detail-type": detail_type, "detail": json.loads(detail)}


def _file(task_id: str, index: int, url: str, state: str = "copied") -> FileItem:
    copied = state == "copied"
    return FileItem(
        task_id=task_id,
        index=index,
        source=url,
        source_url=url,
        kind="image",
        key=f"{PREFIX}{task_id}/{index}.png",
        state=state,  # type: ignore[arg-type]
        bucket="archive" if copied else None,
        bytes=len(url) if copied else None,
        sha256=_sha(url) if copied else None,
        content_type="image/png" if copied else None,
        error=None if copied else "the source answered 404",
        updated_at=NOW,
    )


def _events(task: TaskItem, files: list[FileItem]) -> list[dict[str, Any]]:
    events = [_event_dict(e.detail_type, e.detail) for e in map(_file_event, files)]
    status = document(task, files)
    shown = status.model_dump(
        mode="json", by_alias=True, exclude={"files": {"__all__": {"url", "url_expires_at"}}}
    )
    names = {"copied": "Task Archived", "failed": "Task Failed", "ignored": "Task Ignored"}
    task_event = _event(names[status.state], task.task_id, "task", status.state, shown)
    return [*events, _event_dict(task_event.detail_type, task_event.detail)]


def _history() -> History:
    """Two tasks of two files, every file copied and announced; one more taken down, nothing left of it."""
    history = History(
        prefix=PREFIX,
        objects={},
        uploads=[],
        tasks={},
        files={},
        sources={},
        expected={},
        taken_down=set(),
        events=[],
    )
    for task_id in ("task-a", "task-b"):
        task = TaskItem(
            task_id=task_id,
            family="market",
            outcome=Outcome.SUCCESS,
            file_count=2,
            created_at=NOW,
            updated_at=NOW,
        )
        urls = [f"https://tempfile.aiquickdraw.com/{task_id}/{n}.png" for n in range(2)]
        files = [_file(task_id, n, url) for n, url in enumerate(urls)]
        history.tasks[task_id] = task
        history.files[task_id] = files
        history.expected[task_id] = urls
        for item, url in zip(files, urls, strict=True):
            history.objects[item.key] = StoredObject(_sha(url), len(url), "image/png")
            history.sources[url] = Source(frozenset({_sha(url)}), "image/png")
        history.events += _events(task, files)
        history.events += _events(task, files)[:1]  # a redelivered copy: identical
    gone = TaskItem(
        task_id="task-gone",
        family="market",
        outcome=Outcome.SUCCESS,
        file_count=1,
        taken_down_at=NOW,
        created_at=NOW,
        updated_at=NOW,
    )
    history.tasks["task-gone"] = gone
    history.taken_down.add("task-gone")
    history.expected["task-gone"] = ["https://tempfile.aiquickdraw.com/task-gone/0.png"]
    history.events += _events(gone, [])
    history.dlq_messages = {"copy": 0, "events": 0}
    history.callbacks = [
        CallbackAnswer("task-a", "market", 200, stores_failing=False),
        CallbackAnswer("task-b", "market", 503, stores_failing=True),  # the ledger failed: kie.ai retries
        CallbackAnswer("task-b", "market", 200, stores_failing=False),
    ]
    return history


def _failed(history: History) -> set[str]:
    return {v.name for v in check(history) if not v.passed}


def test_a_consistent_history_passes_every_invariant() -> None:
    text, ok = report(check(_history()))
    assert ok, text
    assert text.count("PASS") == len(check(_history()))


def test_a_source_under_two_keys_fails() -> None:
    history = _history()
    first = history.files["task-a"][0]
    history.objects[f"{PREFIX}task-a/again-0.png"] = history.objects[first.key]
    assert _failed(history) == {"no source stored twice, no object without a ledger file"}


def test_a_lost_file_fails() -> None:
    history = _history()
    lost = history.files["task-b"].pop()
    history.objects.pop(lost.key)
    history.events = [
        e
        for e in history.events
        if e["detail"].get("index") != lost.index or e["detail"]["taskId"] != "task-b"
    ]
    assert "every file sent is copied (or failed for a permanent fault)" in _failed(history)


def test_an_object_missing_under_its_copied_key_fails() -> None:
    history = _history()
    history.objects.pop(history.files["task-a"][1].key)
    assert _failed(history) == {"every copied file stored under its key with its source's bytes and type"}


def test_a_mixed_object_fails() -> None:
    """Bytes of no version the source served, even with the ledger agreeing with them."""
    history = _history()
    item = history.files["task-a"][0]
    mixed = _sha("half of one version, half of another")
    history.objects[item.key] = dataclasses.replace(history.objects[item.key], sha256=mixed)
    history.files["task-a"][0] = item.model_copy(update={"sha256": mixed})
    assert "every copied file stored under its key with its source's bytes and type" in _failed(history)


def test_a_wrong_content_type_fails() -> None:
    history = _history()
    key = history.files["task-b"][0].key
    history.objects[key] = dataclasses.replace(history.objects[key], content_type="application/octet-stream")
    assert _failed(history) == {"every copied file stored under its key with its source's bytes and type"}


def test_two_different_events_under_one_dedupe_id_fail() -> None:
    history = _history()
    event = json.loads(json.dumps(history.events[0]))
    event["detail"]["bytes"] += 1
    history.events.append(event)
    assert _failed(history) == {"events: one event per dedupeId, schema-valid"}


def test_an_event_off_its_schema_fails() -> None:
    history = _history()
    event = json.loads(json.dumps(history.events[0]))
    event["detail"]["surprise"] = True
    event["detail"]["dedupeId"] += "-other"
    history.events.append(event)
    assert _failed(history) == {"events: one event per dedupeId, schema-valid"}


def test_a_leftover_upload_fails() -> None:
    history = _history()
    history.uploads.append(f"{PREFIX}task-a/2.mp4")
    assert _failed(history) == {"no incomplete multipart upload"}


def test_anything_stored_for_a_task_taken_down_fails() -> None:
    history = _history()
    history.objects[f"{PREFIX}task-gone/callbacks/1.json"] = StoredObject(_sha("{}"), 2, "application/json")
    assert _failed(history) == {"nothing stored for tasks taken down"}


def test_a_task_left_copying_fails() -> None:
    history = _history()
    history.files["task-b"][1] = history.files["task-b"][1].model_copy(update={"state": "pending"})
    failed = _failed(history)
    assert "every task final, consistent with its files" in failed
    assert "every file sent is copied (or failed for a permanent fault)" in failed


@pytest.mark.parametrize("permanent", [True, False])
def test_a_failed_file_passes_only_for_a_permanent_fault(permanent: bool) -> None:
    history = _history()
    failed = _file("task-b", 1, history.expected["task-b"][1], state="failed")
    history.files["task-b"][1] = failed
    history.objects.pop(failed.key)
    history.sources[failed.source] = dataclasses.replace(
        history.sources[failed.source], permanent_fault=permanent
    )
    task = history.tasks["task-b"]
    history.events = [e for e in history.events if e["detail"]["taskId"] != "task-b"]
    history.events += _events(task, history.files["task-b"])
    assert _failed(history) == (
        set() if permanent else {"every file sent is copied (or failed for a permanent fault)"}
    )


def test_a_final_file_without_its_event_fails() -> None:
    history = _history()
    history.events = [
        e for e in history.events if e["detail-type"] != "File Archived" or e["detail"]["taskId"] != "task-a"
    ]
    assert _failed(history) == {"events: every final file and task announced as the ledger holds it"}


def test_a_dead_letter_left_fails() -> None:
    history = _history()
    history.dlq_messages["copy"] = 2
    assert _failed(history) == {"DLQs empty"}


def test_two_sources_serving_the_same_bytes_are_two_files_not_one_stored_twice() -> None:
    history = _history()
    first, second = history.files["task-a"]
    same = history.objects[first.key]
    history.objects[second.key] = same
    history.files["task-a"][1] = second.model_copy(update={"sha256": same.sha256, "bytes": same.size})
    history.sources[history.expected["task-a"][1]] = history.sources[history.expected["task-a"][0]]
    history.events = [e for e in history.events if e["detail"]["taskId"] != "task-a"]
    history.events += _events(history.tasks["task-a"], history.files["task-a"])
    text, ok = report(check(history))
    assert ok, text


@pytest.mark.parametrize(
    "answer",
    [
        CallbackAnswer("task-a", "market", 503, stores_failing=False),  # nothing was failing
        CallbackAnswer("task-a", "market", 500, stores_failing=False),
        CallbackAnswer("task-a", "market", 400, stores_failing=True),  # a valid callback refused
        CallbackAnswer("task-a", "market", 401, stores_failing=False),
    ],
)
def test_a_valid_callback_answered_but_200_without_a_store_failing_fails(answer: CallbackAnswer) -> None:
    history = _history()
    history.callbacks.append(answer)
    assert _failed(history) == {
        "kie.ai got a 5xx for a valid callback only while the ledger or the archive failed"
    }
