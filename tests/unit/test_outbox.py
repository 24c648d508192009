"""The outbox's logic over in-memory fakes: which ledger writes call for which events, their
dedupeIds, and how refused events are retried and reported per stream record."""

import json
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import jsonschema
import pytest
from botocore.stub import Stubber
from devstack.lambda_runtime import LambdaContext
from tests.fakes import FakeBus

from kie2s3.adapters.event_bus import EventBus
from kie2s3.adapters.ledger import stream_change
from kie2s3.errors import RetryableError
from kie2s3.logic.outbox import FILE_EVENTS, TASK_EVENTS, events_of, publish
from kie2s3.models import BusEvent, FileItem, FileState, Outcome, TaskItem
from kie2s3.ports import MAX_PUT_BYTES, TOO_LARGE, FileChange, TaskChange, batches, entry_size
from kie2s3.retries import RetryPolicy

TASK = "task0123"
NOW = "2026-11-30T10:00:00.000+00:00"
NO_WAIT = RetryPolicy(attempts=3, base_seconds=0.0, cap_seconds=0.0)


def _task(outcome: Outcome = Outcome.SUCCESS, **fields: Any) -> TaskItem:
    return TaskItem(task_id=TASK, family="market", outcome=outcome, created_at=NOW, updated_at=NOW, **fields)


def _file(index: int, state: FileState, **fields: Any) -> FileItem:
    copied = (
        {
            "bucket": "archive-bucket",
            "bytes": 10 + index,
            "sha256": f"{index:064x}",
            "content_type": "image/png",
        }
        if state == "copied"
        else {}
    )
    defaults: dict[str, Any] = {
        "task_id": TASK,
        "index": index,
        "source": f"https://tempfile.aiquickdraw.com/p/{index}.png",
        "source_url": f"https://tempfile.aiquickdraw.com/p/{index}.png?sig=secret",
        "kind": "image",
        "key": f"kie/{TASK}/{index:02d}.png",
        "state": state,
        "updated_at": NOW,
    }
    return FileItem(**{**defaults, **copied, **fields})


class FakeLedger:
    def __init__(self, task: TaskItem | None, files: list[FileItem]) -> None:
        self.found = None if task is None else (task, files)
        self.reads = 0

    def get(self, task_id: str) -> tuple[TaskItem, list[FileItem]] | None:
        self.reads += 1
        return self.found


def _services(ledger: FakeLedger | None = None, bus: FakeBus | None = None) -> Any:
    return SimpleNamespace(ledger=ledger or FakeLedger(None, []), bus=bus or FakeBus(), retry=NO_WAIT)


def _detail(event: BusEvent) -> dict[str, Any]:
    detail: dict[str, Any] = json.loads(event.detail)
    return detail


def test_events_of_a_file_copied_gives_its_event_then_its_final_task_event() -> None:
    files = [_file(0, "copied"), _file(1, "copied")]
    ledger = FakeLedger(_task(), files)
    events = events_of(_services(ledger), FileChange(TASK, "pending", files[1]), {})
    assert [e.detail_type for e in events] == ["File Archived", "Task Archived"]
    file_detail, task_detail = (_detail(e) for e in events)
    assert file_detail == {
        "taskId": TASK,
        "index": 1,
        "source": "https://tempfile.aiquickdraw.com/p/1.png",
        "state": "copied",
        "bucket": "archive-bucket",
        "key": f"kie/{TASK}/01.png",
        "bytes": 11,
        "sha256": f"{1:064x}",
        "contentType": "image/png",
        "error": None,
        "sourceUnstable": False,
        "dedupeId": events[0].dedupe_id,
    }
    assert [f["index"] for f in task_detail["files"]] == [0, 1]
    assert task_detail["state"] == "copied"
    # Never the full source URL (its query may hold a signature), never a link.
    assert "secret" not in events[0].detail + events[1].detail
    assert not {"url", "urlExpiresAt"} & {k for f in task_detail["files"] for k in f}


def test_events_of_a_file_not_yet_settled_or_settled_before_is_none() -> None:
    ledger = FakeLedger(_task(), [_file(0, "copied")])
    services = _services(ledger)
    assert events_of(services, FileChange(TASK, "pending", _file(0, "copying")), {}) == []
    assert events_of(services, FileChange(TASK, None, _file(0, "pending")), {}) == []
    assert events_of(services, FileChange(TASK, "copied", _file(0, "copied")), {}) == []  # a rewrite
    assert events_of(services, FileChange(TASK, "copied", None), {}) == []  # removed (takedown)
    assert ledger.reads == 0


def test_events_of_a_file_created_failed_gives_file_failed_and_waits_for_the_others() -> None:
    failed = _file(1, "failed", error="host not allowed")
    ledger = FakeLedger(_task(), [_file(0, "pending"), failed])
    events = events_of(_services(ledger), FileChange(TASK, None, failed), {})
    assert [e.detail_type for e in events] == ["File Failed"]  # the task is still pending
    assert _detail(events[0])["error"] == "host not allowed"


def test_events_of_a_task_write_that_changes_nothing_shown_reads_nothing() -> None:
    before = {"task_id": TASK, "family": "market", "outcome": "failed", "reason": "x", "updated_at": NOW}
    after = {**before, "updated_at": "2026-11-30T11:00:00.000+00:00", "open": None}
    ledger = FakeLedger(_task(Outcome.FAILED, reason="x"), [])
    assert events_of(_services(ledger), TaskChange(TASK, before, after), {}) == []
    assert ledger.reads == 0
    changed = events_of(_services(ledger), TaskChange(TASK, before, {**after, "reason": "y"}), {})
    assert [e.detail_type for e in changed] == ["Task Failed"]


@pytest.mark.parametrize(
    ("outcome", "files", "expected"),
    [
        (Outcome.FAILED, [], ["Task Failed"]),
        (Outcome.NO_FILES, [], ["Task Ignored"]),
        (Outcome.UNRECOGNISED, [], ["Task Ignored"]),
        (Outcome.NOT_FINAL, [], []),  # a Suno text/first stage: pending
        (Outcome.SUCCESS, [], []),  # recorded, its files a write later: not `ignored`
        (Outcome.SUCCESS, ["copied", "pending"], []),
        (Outcome.SUCCESS, ["copied", "failed"], ["Task Failed"]),
    ],
)
def test_events_of_a_new_task_follow_its_final_state_only(
    outcome: Outcome, files: list[FileState], expected: list[str]
) -> None:
    ledger = FakeLedger(_task(outcome), [_file(n, s) for n, s in enumerate(files)])
    events = events_of(_services(ledger), TaskChange(TASK, None, {"task_id": TASK}), {})
    assert [e.detail_type for e in events] == expected


def test_events_of_a_batch_read_each_task_once() -> None:
    files = [_file(0, "copied"), _file(1, "copied")]
    ledger = FakeLedger(_task(), files)
    reads: dict[str, Any] = {}
    first = events_of(_services(ledger), FileChange(TASK, "pending", files[0]), reads)
    second = events_of(_services(ledger), FileChange(TASK, "pending", files[1]), reads)
    assert ledger.reads == 1
    assert first[1] == second[1]  # two files settling at once: the same task event


def test_dedupe_id_is_equal_for_equal_events_and_differs_for_a_different_failure() -> None:
    one = events_of(_services(), FileChange(TASK, "pending", _file(0, "failed", error="422")), {})
    same = events_of(_services(), FileChange(TASK, "copying", _file(0, "failed", error="422")), {})
    other = events_of(_services(), FileChange(TASK, "pending", _file(0, "failed", error="404")), {})
    assert one == same
    assert one[0].dedupe_id != other[0].dedupe_id
    task_id, subject, state, digest = one[0].dedupe_id.split("/")
    assert (task_id, state) == (TASK, "failed")
    assert subject.startswith("file-")
    assert (len(subject), len(digest)) == (21, 16)


def _events(n: int, detail_bytes: int = 10) -> list[BusEvent]:
    return [
        BusEvent(detail_type="File Archived", dedupe_id=f"id{i}", detail="x" * detail_bytes) for i in range(n)
    ]


def test_publish_puts_each_dedupe_id_once_in_requests_of_ten() -> None:
    bus = FakeBus()
    events = _events(12)
    failed = publish(_services(bus=bus), [("1", events[:7]), ("2", events[5:]), ("3", [])])
    assert failed == set()
    assert bus.puts == [[f"id{i}" for i in range(10)], ["id10", "id11"]]


def test_publish_puts_a_refused_event_again_and_reports_nothing_once_taken() -> None:
    bus = FakeBus(refuse={"id1": ("ThrottlingException", 2)})
    assert publish(_services(bus=bus), [("1", _events(3))]) == set()
    assert bus.puts == [["id0", "id1", "id2"], ["id1"], ["id1"]]


def test_publish_reports_every_record_whose_event_stays_refused() -> None:
    bus = FakeBus(refuse={"id1": ("InternalException", 99)})
    events = _events(3)
    failed = publish(_services(bus=bus), [("100", events[:2]), ("101", events[1:2]), ("102", events[2:])])
    assert failed == {"100", "101"}
    assert len(bus.puts) == NO_WAIT.attempts


def test_publish_neither_puts_again_nor_reports_an_event_too_large_for_any_request() -> None:
    # Delivered again, the record would give as large an event: it would hold up its shard until it
    # expired. Events of the outbox are trimmed to fit, so none is (see the trimming tests).
    bus = FakeBus(refuse={"id0": (TOO_LARGE, 99)})
    assert publish(_services(bus=bus), [("7", _events(1))]) == set()
    assert bus.puts == [["id0"]]


def test_publish_retries_a_request_that_failed_as_a_whole() -> None:
    bus = FakeBus(raises=1)
    assert publish(_services(bus=bus), [("1", _events(2))]) == set()
    assert bus.puts == [["id0", "id1"], ["id0", "id1"]]


def test_batches_respect_ten_entries_and_256_kib() -> None:
    assert [len(b) for b in batches(_events(25))] == [10, 10, 5]
    big = _events(5, detail_bytes=100 * 1024)
    grouped = list(batches(big))
    assert [len(b) for b in grouped] == [2, 2, 1]
    assert all(sum(entry_size(e) for e in b) <= MAX_PUT_BYTES for b in grouped)
    [alone] = batches(_events(1, detail_bytes=MAX_PUT_BYTES))
    assert len(alone) == 1


def _many_files(count: int, source_chars: int) -> list[FileItem]:
    return [
        _file(
            n,
            "failed",
            error="HTTP 404",
            source=f"https://tempfile.aiquickdraw.com/p/{n}-{'s' * source_chars}",
        )
        for n in range(count)
    ]


def _schema_errors(event: BusEvent) -> list[str]:
    schema = json.loads((SCHEMAS / f"{event.detail_type.lower().replace(' ', '-')}.json").read_text())
    whole = {"source": "kie2s3", "detail-type": event.detail_type, "detail": _detail(event)}
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(whole)]


@pytest.mark.parametrize(("count", "source_chars"), [(1000, 200), (300, 2000)])
def test_a_task_event_too_large_for_put_events_keeps_the_files_that_fit_and_counts_the_rest(
    count: int, source_chars: int
) -> None:
    files = _many_files(count, source_chars)
    ledger = FakeLedger(_task(), files)
    [file_event, task_event] = events_of(_services(ledger), FileChange(TASK, "pending", files[-1]), {})
    assert (file_event.trimmed, task_event.trimmed) == (False, True)
    assert task_event.detail_type == "Task Failed"
    assert MAX_PUT_BYTES - 4096 < entry_size(task_event) <= MAX_PUT_BYTES  # as many files as fit
    detail = _detail(task_event)
    kept = [f["index"] for f in detail["files"]]
    assert kept == list(range(len(kept)))  # the first files, in order
    assert 0 < len(kept) < count
    assert detail["filesOmitted"] == count - len(kept)
    assert (detail["taskId"], detail["state"], detail["dedupeId"]) == (TASK, "failed", task_event.dedupe_id)
    assert _schema_errors(task_event) == []
    # Deterministic: equal input, equal event; one more file, another dedupeId (its digest is of
    # every file, not only those kept).
    again = events_of(_services(FakeLedger(_task(), files)), TaskChange(TASK, None, {"task_id": TASK}), {})
    assert again == [task_event]
    more = events_of(
        _services(FakeLedger(_task(), [*files, *_many_files(count + 1, source_chars)[count:]])),
        TaskChange(TASK, None, {"task_id": TASK}),
        {},
    )
    assert more[0].dedupe_id.rsplit("/", 1)[0] == task_event.dedupe_id.rsplit("/", 1)[0]
    assert more[0].dedupe_id != task_event.dedupe_id


def test_a_trimmed_event_is_published_counted_and_its_record_not_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kie2s3.logic import outbox

    counted: list[tuple[str, float]] = []
    monkeypatch.setattr(outbox.metrics, "add_metric", lambda name, unit, value: counted.append((name, value)))
    files = _many_files(1000, 200)
    events = events_of(_services(FakeLedger(_task(), files)), FileChange(TASK, "pending", files[0]), {})
    bus = FakeBus()
    # EventBus.put refuses (TOO_LARGE) what does not fit: FakeBus takes all, so check the size here.
    assert all(entry_size(e) <= MAX_PUT_BYTES for e in events)
    assert publish(_services(bus=bus), [("5", events), ("6", events[1:])]) == set()
    assert bus.puts == [[e.dedupe_id] for e in events]  # together, over 256 KiB: a request each
    assert counted == [("EventsTrimmed", 1), ("EventsPublished", 2)]


def test_a_file_event_too_large_for_put_events_has_its_long_text_cut() -> None:
    failed = _file(
        0, "failed", error="e" * 300_000, source=f"https://tempfile.aiquickdraw.com/{'s' * 300_000}"
    )
    [event] = events_of(_services(), FileChange(TASK, "pending", failed), {})
    assert event.trimmed
    assert entry_size(event) <= MAX_PUT_BYTES
    detail = _detail(event)
    assert detail["error"] == "e" * 1024 + "…"
    assert detail["source"].endswith("s…")
    assert "filesOmitted" not in detail
    assert _schema_errors(event) == []
    # Its subject is still the digest of the whole source, its dedupeId that of the whole detail.
    assert event == events_of(_services(), FileChange(TASK, "copying", failed), {})[0]
    assert (
        event.dedupe_id.split("/")[1]
        == events_of(
            _services(), FileChange(TASK, None, _file(0, "failed", error="x", source=failed.source)), {}
        )[0].dedupe_id.split("/")[1]
    )


def _stubbed_bus() -> tuple[EventBus, Stubber]:
    client = boto3.client("events", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return EventBus(client, "team-bus"), Stubber(client)


def test_event_bus_puts_the_entries_on_its_bus_and_reads_failed_entries() -> None:
    bus, stubber = _stubbed_bus()
    events = _events(3)
    entries = [
        {"Source": "kie2s3", "DetailType": "File Archived", "Detail": e.detail, "EventBusName": "team-bus"}
        for e in events
    ]
    answer = {
        "FailedEntryCount": 1,
        "Entries": [
            {"EventId": "a"},
            {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow"},
            {"EventId": "c"},
        ],
    }
    stubber.add_response("put_events", answer, {"Entries": entries})
    with stubber:
        assert bus.put(events) == [None, "ThrottlingException", None]
    stubber.assert_no_pending_responses()


def test_event_bus_sends_no_entry_too_large_and_turns_faults_into_retryable_errors() -> None:
    bus, stubber = _stubbed_bus()
    too_large = _events(1, detail_bytes=MAX_PUT_BYTES)
    stubber.add_client_error("put_events", service_error_code="InternalException", http_status_code=500)
    with stubber:
        assert bus.put(too_large) == [TOO_LARGE]  # not sent: the stub's error is still pending
        with pytest.raises(RetryableError, match="InternalException"):
            bus.put(_events(1))
    with pytest.raises(ValueError, match="at most 10"):
        bus.put(_events(11))


def test_stream_change_reads_file_task_and_marker_records() -> None:
    keys = {"pk": TASK, "sk": "FILE#00001"}
    new = {
        **keys,
        **_file(1, "copied").model_dump(exclude_none=True),
        "index": Decimal(1),
        "bytes": Decimal(11),
    }
    change = stream_change(keys, {**keys, "state": "pending"}, new)
    assert change == FileChange(TASK, "pending", _file(1, "copied"))
    assert (
        stream_change({"pk": TASK, "sk": "SOURCE#ab"}, {}, {"pk": TASK, "sk": "SOURCE#ab", "index": 1})
        is None
    )
    task_keys = {"pk": TASK, "sk": "TASK"}
    assert stream_change(task_keys, {}, task_keys) == TaskChange(TASK, None, None)  # moto's keys-only image
    assert stream_change(task_keys, task_keys | {"outcome": "failed"}, {}) == TaskChange(
        TASK, {"outcome": "failed"}, None
    )


def test_stream_handler_reports_only_the_records_whose_events_were_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kie2s3.handlers import stream

    files = [_file(0, "copied"), _file(1, "failed", error="gone")]
    file_event, task_event = events_of(
        _services(FakeLedger(_task(), files)), FileChange(TASK, "pending", files[0]), {}
    )
    bus = FakeBus(refuse={task_event.dedupe_id: ("InternalException", 99)})
    monkeypatch.setattr(stream, "get_services", lambda: _services(FakeLedger(_task(), files), bus))

    def record(sequence: str, sort_key: str, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        keys = {"pk": {"S": TASK}, "sk": {"S": sort_key}}
        return {
            "eventSource": "aws:dynamodb",
            "eventName": "MODIFY",
            "dynamodb": {"Keys": keys, "OldImage": old, "NewImage": new, "SequenceNumber": sequence},
        }

    marker = record("10", "SOURCE#ab", {}, {"pk": {"S": TASK}, "sk": {"S": "SOURCE#ab"}})
    settled = record(
        "11",
        "FILE#00000",
        {"state": {"S": "pending"}},
        {
            "pk": {"S": TASK},
            "sk": {"S": "FILE#00000"},
            **{
                k: {"BOOL": v} if isinstance(v, bool) else {"N": str(v)} if isinstance(v, int) else {"S": v}
                for k, v in files[0].model_dump(exclude_none=True).items()
            },
        },
    )
    answer = stream.handle_stream({"Records": [marker, settled]}, LambdaContext())
    # The file's event was put; the task's was refused: record 11 is delivered again, not record 10.
    assert answer == {"batchItemFailures": [{"itemIdentifier": "11"}]}
    assert bus.puts == [[file_event.dedupe_id, task_event.dedupe_id]] + [[task_event.dedupe_id]] * (
        NO_WAIT.attempts - 1
    )


SCHEMAS = Path(__file__).resolve().parents[2] / "events" / "schemas"


def test_one_schema_per_detail_type_each_a_valid_json_schema() -> None:
    schemas = {p.name: json.loads(p.read_text()) for p in sorted(SCHEMAS.glob("*.json"))}
    for schema in schemas.values():
        jsonschema.Draft202012Validator.check_schema(schema)
    by_type = {s["properties"]["detail-type"]["const"]: name for name, s in schemas.items()}
    assert set(by_type) == {*FILE_EVENTS.values(), *TASK_EVENTS.values()}
    assert all(name == f"{kind.lower().replace(' ', '-')}.json" for kind, name in by_type.items())


@pytest.mark.parametrize(
    ("change", "files"),
    [
        (FileChange(TASK, "pending", _file(0, "copied")), [_file(0, "copied")]),
        (
            FileChange(TASK, "pending", _file(0, "copied", source_unstable=True)),
            [_file(0, "copied", source_unstable=True)],
        ),
        (FileChange(TASK, "pending", _file(0, "failed", error="422")), [_file(0, "failed", error="422")]),
        (TaskChange(TASK, None, {"task_id": TASK}), []),
    ],
)
def test_every_event_the_logic_builds_fits_its_schema(
    change: FileChange | TaskChange, files: list[FileItem]
) -> None:
    task = _task(Outcome.SUCCESS if files else Outcome.NO_FILES)
    events = events_of(_services(FakeLedger(task, files)), change, {})
    assert events
    for event in events:
        schema = json.loads((SCHEMAS / f"{event.detail_type.lower().replace(' ', '-')}.json").read_text())
        whole = {"source": "kie2s3", "detail-type": event.detail_type, "detail": _detail(event)}
        jsonschema.validate(whole, schema, cls=jsonschema.Draft202012Validator)
        with pytest.raises(jsonschema.ValidationError):  # a link is never part of an event
            jsonschema.validate(
                {**whole, "detail": {**whole["detail"], "url": "https://x"}},
                schema,
                cls=jsonschema.Draft202012Validator,
            )
