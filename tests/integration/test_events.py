"""Events on EventBridge from the ledger's stream: exactly the documented ones, schema-valid, never
two different events under one dedupeId, and none lost when a function dies after its ledger write."""

import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from devstack.callbacks import load_event, market_body, resign, serve_result_files
from devstack.lambda_runtime import LambdaContext, function_environment, invoke
from devstack.stack import WEBHOOK_HMAC_KEY, Stack
from tests.integration.conftest import Outbox, post_callback, send, serve, task_document, without_links

from kie2s3.adapters.ledger import Ledger
from kie2s3.families import task_id_of
from kie2s3.models import CopyResult, FileItem, Outcome, TaskItem
from kie2s3.ports import now_iso

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = {
    schema["properties"]["detail-type"]["const"]: schema
    for schema in (json.loads(p.read_text()) for p in sorted((ROOT / "events" / "schemas").glob("*.json")))
}


def _of(events: list[dict[str, Any]], task_id: str) -> list[dict[str, Any]]:
    """The events about one task, each checked against its detail-type's schema in events/schemas/."""
    mine = [e for e in events if e["detail"]["taskId"] == task_id]
    for event in mine:
        jsonschema.validate(event, SCHEMAS[event["detail-type"]], cls=jsonschema.Draft202012Validator)
    return mine


def _distinct(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The events by dedupeId, after checking that every repeat of a dedupeId is the same event."""
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_id[event["detail"]["dedupeId"]].append(event)
    for dedupe_id, repeats in by_id.items():
        assert all(
            (r["detail-type"], r["source"], r["detail"])
            == (repeats[0]["detail-type"], "kie2s3", repeats[0]["detail"])
            for r in repeats
        ), dedupe_id
    return {dedupe_id: repeats[0] for dedupe_id, repeats in by_id.items()}


def _kinds(events: dict[str, dict[str, Any]]) -> list[str]:
    return sorted(e["detail-type"] for e in events.values())


def _without(detail: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in detail.items() if k not in names}


def _sample(name: str, task_id: str) -> dict[str, Any]:
    """A callback sample of events/ made a callback of another task, signed for it; its result URLs
    are the task's own (the emulator counts the requests for each URL, which other tests check)."""
    event = load_event(name)
    body = json.loads(event["body"])
    retasked = json.dumps(body).replace(task_id_of(body), task_id).replace(".com/s/", f".com/s/{task_id}-")
    return resign({**event, "body": retasked}, task_id, WEBHOOK_HMAC_KEY)


def test_events_archived_files_give_one_event_each_and_one_for_the_task(outbox: Outbox, task_id: str) -> None:
    served = serve(outbox.stack, task_id, [(".png", 1024), (".mp4", 2048)])
    assert post_callback(market_body(task_id, list(served)), task_id)[0] == 200
    events = _distinct(_of(outbox.drain(), task_id))
    assert _kinds(events) == ["File Archived", "File Archived", "Task Archived"]
    doc = task_document(task_id)
    files = without_links(doc["files"])
    [task] = [e["detail"] for e in events.values() if e["detail-type"] == "Task Archived"]
    assert _without(task, "dedupeId") == {**doc, "files": files}
    assert task["dedupeId"].startswith(f"{task_id}/task/copied/")
    archived = sorted(
        (e["detail"] for e in events.values() if e["detail-type"] == "File Archived"),
        key=lambda d: d["index"],
    )
    assert [_without(d, "taskId", "dedupeId") for d in archived] == files
    assert [d["sha256"] for d in archived] == [f.sha256_hex() for f in served.values()]
    assert all(d["dedupeId"].startswith(f"{task_id}/file-") for d in archived)


def test_events_failed_files_and_the_failed_task_say_why(outbox: Outbox, task_id: str) -> None:
    [copied] = serve(outbox.stack, task_id, [(".png", 1024)])
    unknown = f"https://tempfile.aiquickdraw.com/p/{task_id}_gone.png"  # kie.ai answers 422 for it
    refused = f"https://files.example.com/{task_id}.png"  # a host the source policy refuses
    post_callback(market_body(task_id, [copied, unknown, refused]), task_id)
    events = _distinct(_of(outbox.drain(), task_id))
    assert _kinds(events) == ["File Archived", "File Failed", "File Failed", "Task Failed"]
    failed = {
        e["detail"]["source"]: e["detail"] for e in events.values() if e["detail-type"] == "File Failed"
    }
    assert set(failed) == {unknown, refused}
    doc = task_document(task_id)
    assert {f["source"]: f["error"] for f in doc["files"] if f["state"] == "failed"} == {
        s: d["error"] for s, d in failed.items()
    }
    [task] = [e["detail"] for e in events.values() if e["detail-type"] == "Task Failed"]
    assert _without(task, "dedupeId") == {**doc, "files": without_links(doc["files"])}


def test_events_task_failed_at_kie_is_one_event(outbox: Outbox, task_id: str) -> None:
    post_callback(market_body(task_id, [], state="fail", code=501), task_id)
    events = _distinct(_of(outbox.drain(), task_id))
    assert _kinds(events) == ["Task Failed"]
    [event] = events.values()
    assert event["detail"]["files"] == []
    assert event["detail"]["reason"] == task_document(task_id)["reason"]


def test_events_result_without_files_is_task_ignored(outbox: Outbox, task_id: str) -> None:
    assert send(_sample("callback-suno-lyrics.json", task_id))[0] == 200
    events = _distinct(_of(outbox.drain(), task_id))
    assert _kinds(events) == ["Task Ignored"]
    [event] = events.values()
    assert _without(event["detail"], "dedupeId") == task_document(task_id)


def test_events_non_final_suno_stages_give_no_task_event(outbox: Outbox, task_id: str) -> None:
    for stage in ("callback-suno-text.json", "callback-suno-first.json"):
        assert send(_sample(stage, task_id))[0] == 200
        assert task_document(task_id)["state"] == "pending"
        assert _of(outbox.drain(), task_id) == [], stage
    complete = _sample("callback-suno-complete.json", task_id)
    expected = task_document(task_id)  # still the `first` stage's document
    serve_result_files(outbox.stack.emulator, _result_urls(complete), size=1024)
    assert send(complete)[0] == 200
    events = _distinct(_of(outbox.drain(), task_id))
    doc = task_document(task_id)
    assert doc["state"] == "copied" != expected["state"]
    assert _kinds(events) == ["File Archived"] * len(doc["files"]) + ["Task Archived"]


def _result_urls(event: dict[str, Any]) -> list[str]:
    from kie2s3.families import PARSERS, detect

    body = json.loads(event["body"])
    parser = detect(body, PARSERS)
    assert parser is not None
    return [f.url for f in parser.parse(body).files]


def test_events_duplicate_callbacks_and_stream_redelivery_never_differ_per_dedupe_id(
    outbox: Outbox, task_id: str
) -> None:
    redelivery = outbox.stack.stream_poller().start()  # reads the same records again afterwards
    body = market_body(task_id, list(serve(outbox.stack, task_id, [(".png", 1024), (".png", 1536)])))
    with ThreadPoolExecutor(max_workers=3) as pool:
        assert [s for s, _ in pool.map(lambda _: post_callback(body, task_id), range(3))] == [200] * 3
    events = _of(outbox.drain(), task_id)
    assert post_callback(body, task_id)[0] == 200  # a late duplicate, after the copies
    events += _of(outbox.drain(), task_id)
    redelivery.drain()  # the stream delivers every record once more
    again = _of(outbox.stack.take_events(), task_id)
    assert again, "the redelivered records give their events again"
    distinct = _distinct(events + again)
    assert _kinds(distinct) == ["File Archived", "File Archived", "Task Archived"]
    assert set(distinct) == {e["detail"]["dedupeId"] for e in again}


def test_events_come_from_the_ledger_write_even_when_its_writer_dies_right_after(
    outbox: Outbox, task_id: str
) -> None:
    # What a copy worker killed right after its ledger write leaves: the writes, and nothing else of
    # it ran. The copy path holds no event code: the stream is the only way an event can come.
    ledger = Ledger(outbox.stack.tasks_table())
    now = now_iso()
    ledger.save_task(
        TaskItem(
            task_id=task_id,
            family="market",
            outcome=Outcome.SUCCESS,
            file_count=1,
            created_at=now,
            updated_at=now,
        )
    )
    source = f"https://tempfile.aiquickdraw.com/p/{task_id}.png"
    key = f"kie/{task_id}/00.png"
    item = FileItem(task_id=task_id, index=0, source=source, kind="image", key=key, updated_at=now)
    assert ledger.add_files([item])
    result = CopyResult(
        bucket=outbox.stack.bucket, key=key, bytes=5, sha256="ab" * 32, content_type="image/png"
    )
    ledger.mark_copied(task_id, 0, result)
    assert _of(outbox.stack.take_events(), task_id) == []  # the writes alone put nothing on the bus
    outbox.stream.drain()
    events = _distinct(_of(outbox.stack.take_events(), task_id))
    assert _kinds(events) == ["File Archived", "Task Archived"]
    [archived] = [e["detail"] for e in events.values() if e["detail-type"] == "File Archived"]
    assert (archived["key"], archived["bytes"], archived["sha256"]) == (key, 5, "ab" * 32)


def test_events_the_bus_refuses_are_retried_past_any_count_and_published_once_it_takes_them(
    outbox: Outbox, task_id: str
) -> None:
    post_callback(market_body(task_id, [], state="fail", code=501), task_id)
    outbox.stack.poller().drain()
    # The bus refuses every event (it does not exist) for more deliveries than a count of retries
    # would allow: the template retries until the records expire, so none is given up.
    with function_environment({**outbox.stack.env, "EVENT_BUS_NAME": "no-such-bus"}):
        for _ in range(25):
            outbox.stream.poll_once()
    assert _of(outbox.stack.take_events(), task_id) == []
    assert (outbox.stream.given_up, outbox.stream.invoked) == (0, 25)
    # The bus takes events again: the same records give their events, none lost, none in the
    # on-failure queue (it holds the place of records that expired unpublished).
    events = _distinct(_of(outbox.drain(), task_id))
    assert _kinds(events) == ["Task Failed"]
    assert outbox.stream.given_up == 0
    dlq = outbox.stack.aws.physical_ids["EventsDeadLetterQueue"]
    assert outbox.stack.client("sqs").receive_message(QueueUrl=dlq).get("Messages", []) == []


def test_events_a_task_too_large_for_one_event_gives_a_trimmed_one_and_blocks_nothing(
    outbox: Outbox, task_id: str
) -> None:
    # Tens of files with long sources: the task's status document is over PutEvents' 256 KiB.
    ledger = Ledger(outbox.stack.tasks_table())
    now = now_iso()
    count = 30
    ledger.save_task(
        TaskItem(
            task_id=task_id,
            family="market",
            outcome=Outcome.SUCCESS,
            file_count=count,
            created_at=now,
            updated_at=now,
        )
    )
    items = [
        FileItem(
            task_id=task_id,
            index=n,
            source=f"https://tempfile.aiquickdraw.com/p/{task_id}-{n}-{'s' * 10_000}.png",
            kind="image",
            key=f"kie/{task_id}/{n:03d}.png",
            state="failed",
            error="HTTP 404",
            updated_at=now,
        )
        for n in range(count)
    ]
    for first in range(0, count, 50):
        assert ledger.add_files(items[first : first + 50])
    events = _distinct(_of(outbox.drain(), task_id))  # each checked against its schema
    assert outbox.stream.given_up == 0
    tasks = [e["detail"] for e in events.values() if e["detail-type"] == "Task Failed"]
    assert len([e for e in events.values() if e["detail-type"] == "File Failed"]) == count
    assert tasks
    for detail in tasks:
        listed = [f["index"] for f in detail["files"]]
        assert listed == list(range(len(listed)))
        assert 0 < len(listed) < count
        assert detail["filesOmitted"] == count - len(listed)


@pytest.mark.parametrize("name", ["dynamodb-file-copied.json", "dynamodb-task-failed.json"])
def test_events_stream_samples_give_their_event(queue_mode: Stack, task_id: str, name: str) -> None:
    sample = load_event(name)
    [record] = sample["Records"]
    original = record["dynamodb"]["Keys"]["pk"]["S"]
    event = json.loads(json.dumps(sample).replace(original, task_id))
    image = event["Records"][0]["dynamodb"]["NewImage"]
    queue_mode.take_events()
    if name == "dynamodb-task-failed.json":  # the task the record is about, as the ledger holds it
        Ledger(queue_mode.tasks_table()).save_task(
            TaskItem.model_validate({k: v["S"] if "S" in v else int(v["N"]) for k, v in image.items()})
        )
    assert invoke(event, LambdaContext(function_name="kie2s3-events")) == {"batchItemFailures": []}
    [published] = _of(queue_mode.take_events(), task_id)
    if name == "dynamodb-file-copied.json":  # the task is unknown to the ledger: the file's event only
        assert published["detail-type"] == "File Archived"
        assert published["detail"]["sha256"] == image["sha256"]["S"]
        assert published["detail"]["key"] == image["key"]["S"].replace(original, task_id)
    else:
        assert published["detail-type"] == "Task Failed"
        assert published["detail"]["reason"] == image["reason"]["S"]
