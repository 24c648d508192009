"""The soak's invariant checker: what S3, the ledger, the queues and the delivered events must show.

`check(history)` is pure: a `History` is read from a running stack by `read_history` (or built by
hand in a test), and each invariant answers PASS or FAIL with its first counter-examples. Nothing
here trusts kie2s3's own account alone: the stored bytes are compared with what the source served.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # kie2s3 is imported once the function's environment is set (Powertools reads it then)
    from kie2s3.models import FileItem, TaskItem

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "events" / "schemas"
FINAL_TASK_STATES = frozenset({"copied", "failed", "ignored"})
# The task event each final state is announced by (design.md, Task states).
TASK_EVENT = {"copied": "Task Archived", "failed": "Task Failed", "ignored": "Task Ignored"}
FILE_EVENT = {"copied": "File Archived", "failed": "File Failed"}
SHOWN = 5  # counter-examples printed per invariant


@dataclass(frozen=True)
class StoredObject:
    """One object under the prefix: its SHA-256 (of the bytes read back), size and Content-Type."""

    sha256: str
    size: int
    content_type: str


@dataclass(frozen=True)
class Source:
    """What a source served: every version's SHA-256 (new_version faults make more than one) and its type."""

    sha256s: frozenset[str]
    content_type: str | None  # None: not known from the source's answer (an empty source's 416)
    permanent_fault: bool = False  # a fault the workload injected as permanent: `failed` is allowed


@dataclass(frozen=True)
class CallbackAnswer:
    """What one delivery of a callback was answered, and whether the ledger (DynamoDB) or the
    archive (S3) answered the invocation with a fault."""

    task_id: str
    sample: str
    status: int
    stores_failing: bool


@dataclass
class History:
    """Everything the checker looks at, read after the drain."""

    prefix: str
    objects: dict[str, StoredObject]  # key -> object, under the prefix
    uploads: list[str]  # keys of incomplete multipart uploads under the prefix
    tasks: dict[str, TaskItem]
    files: dict[str, list[FileItem]]  # task id -> its file items
    sources: dict[str, Source]  # source URL (as the workload sent it) -> what it served
    expected: dict[str, list[str]]  # every task id sent -> the result URLs it sent with a success (none else)
    taken_down: set[str]
    events: list[dict[str, Any]]
    dlq_messages: dict[str, int] = field(default_factory=dict)  # DLQ name -> messages left
    callbacks: list[CallbackAnswer] = field(default_factory=list)  # every delivery, valid every one


@dataclass
class Verdict:
    """One invariant's outcome."""

    name: str
    violations: list[str]

    @property
    def passed(self) -> bool:
        return not self.violations

    def line(self) -> str:
        if self.passed:
            return f"PASS  {self.name}"
        shown = "".join(f"\n        {v}" for v in self.violations[:SHOWN])
        more = f"\n        ... {len(self.violations) - SHOWN} more" if len(self.violations) > SHOWN else ""
        return f"FAIL  {self.name} ({len(self.violations)}){shown}{more}"


def _is_callback(key: str) -> bool:
    return "/callbacks/" in key


def _task_of_key(history: History, key: str) -> str | None:
    """The task whose id is a path segment of the key (the key template keeps it one)."""
    segments = set(key.removeprefix(history.prefix).split("/"))
    found = [task_id for task_id in history.tasks if task_id in segments]
    return found[0] if found else None


def _live_files(history: History) -> Iterable[FileItem]:
    for task_id, items in history.files.items():
        if task_id not in history.taken_down:
            yield from items


def stored_exactly(history: History) -> list[str]:
    """Every copied file is in S3 under its stored key, with its source's exact bytes and type."""
    bad: list[str] = []
    for item in _live_files(history):
        if item.state != "copied":
            continue
        stored = history.objects.get(item.key)
        source = history.sources.get(item.source_url or item.source)
        where = f"{item.task_id}#{item.index} {item.key}"
        if stored is None:
            bad.append(f"{where}: copied in the ledger, no object")
            continue
        if stored.sha256 != item.sha256 or stored.size != item.bytes:
            bad.append(
                f"{where}: object {stored.sha256[:12]}/{stored.size} B, ledger {item.sha256}/{item.bytes}"
            )
        if source is not None and stored.sha256 not in source.sha256s:
            bad.append(
                f"{where}: bytes {stored.sha256[:12]} are no version the source served (a mixed object)"
            )
        if (
            source is not None
            and source.content_type is not None
            and stored.content_type != source.content_type
        ):
            bad.append(f"{where}: Content-Type {stored.content_type!r}, source {source.content_type!r}")
        if stored.content_type != item.content_type:
            bad.append(f"{where}: Content-Type {stored.content_type!r}, ledger {item.content_type!r}")
    return bad


def never_lost(history: History) -> list[str]:
    """Every task sent is in the ledger; every source it sent with its success has a file item,
    copied, or failed for a permanent fault; no file item for a URL it did not send as a result."""
    bad: list[str] = []
    for task_id, urls in history.expected.items():
        if task_id in history.taken_down:
            continue
        if task_id not in history.tasks:
            bad.append(f"{task_id}: sent, not in the ledger")
            continue
        items = {i.source_url or i.source: i for i in history.files.get(task_id, [])}
        bad += [
            f"{task_id}#{i.index} {url}: a file item for no result sent"
            for url, i in items.items()
            if url not in urls
        ]
        for url in urls:
            item = items.get(url)
            if item is None:
                bad.append(f"{task_id} {url}: sent with a success, no file item")
            elif (
                item.state == "failed"
                and not history.sources.get(url, Source(frozenset(), "")).permanent_fault
            ):
                bad.append(f"{task_id}#{item.index}: failed ({item.error}) with no permanent fault injected")
            elif item.state not in ("copied", "failed"):
                bad.append(f"{task_id}#{item.index}: left {item.state}")
    return bad


def stored_once(history: History) -> list[str]:
    """No object but the copied files' (and raw callbacks) under the prefix; no source under two keys."""
    bad: list[str] = []
    referenced = {i.key for i in _live_files(history) if i.state == "copied"}
    for key in sorted(history.objects):
        if _is_callback(key) or key in referenced:
            continue
        task_id = _task_of_key(history, key)
        if task_id in history.taken_down:
            continue  # the takedown invariant's
        bad.append(f"{key}: stored, but no copied file of the ledger names it (task {task_id})")
    by_content: dict[tuple[str | None, str], list[str]] = defaultdict(list)
    for key, stored in history.objects.items():
        if not _is_callback(key):
            by_content[(_task_of_key(history, key), stored.sha256)].append(key)
    for (task_id, sha256), keys in sorted(by_content.items(), key=lambda kv: str(kv[0])):
        # Two sources of a task may serve the same bytes (two empty files): more keys than that
        # is one source stored twice.
        serving = [u for u in history.expected.get(task_id or "", []) if sha256 in _served(history, u)]
        if len(keys) > max(1, len(serving)):
            bad.append(
                f"task {task_id}: the bytes of {len(serving) or 'no'} source(s) under {len(keys)} keys: {sorted(keys)}"
            )
    return bad


def _served(history: History, url: str) -> frozenset[str]:
    source = history.sources.get(url)
    return source.sha256s if source is not None else frozenset()


def nothing_of_taken_down(history: History) -> list[str]:
    """Nothing stored for a task taken down (its files, its raw callbacks) and the task marked so."""
    bad: list[str] = []
    for key in sorted(history.objects):
        if _task_of_key(history, key) in history.taken_down:
            bad.append(f"{key}: stored for a task taken down")
    for task_id in sorted(history.taken_down):
        task = history.tasks.get(task_id)
        if task is not None and not task.taken_down_at:
            bad.append(f"{task_id}: taken down, not marked so in the ledger")
    return bad


def no_incomplete_upload(history: History) -> list[str]:
    return [f"{key}: multipart upload neither completed nor aborted" for key in history.uploads]


def tasks_final(history: History) -> list[str]:
    """Every task in a final state (design.md's table), derived from its files as the API derives it."""
    from kie2s3.logic.status import task_state

    bad: list[str] = []
    for task_id, task in sorted(history.tasks.items()):
        files = history.files.get(task_id, [])
        state = task_state(task, files)
        if state not in FINAL_TASK_STATES:
            bad.append(f"{task_id}: {state} ({task.outcome.value}, files {sorted({f.state for f in files})})")
        if task_id in history.taken_down and state != "ignored":
            bad.append(f"{task_id}: taken down, state {state}")
    return bad


def _validators() -> dict[str, Any]:
    """A validator per detail-type, each schema checked and compiled once (a long soak's events
    are tens of thousands: `jsonschema.validate` checks its schema again at every call)."""
    import jsonschema  # type: ignore[import-untyped]

    validators = {}
    for path in sorted(SCHEMAS_DIR.glob("*.json")):
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        validators[schema["properties"]["detail-type"]["const"]] = jsonschema.Draft202012Validator(schema)
    return validators


def _schema_errors(event: Mapping[str, Any], validators: Mapping[str, Any]) -> str | None:
    validator = validators.get(str(event.get("detail-type")))
    if validator is None:
        return f"unknown detail-type {event.get('detail-type')!r}"
    error = next(iter(validator.iter_errors(event)), None)
    return None if error is None else str(error.message)


def events_consistent(history: History) -> list[str]:
    """Every copy of a dedupeId identical, every event schema-valid."""
    bad: list[str] = []
    validators = _validators()
    seen: dict[str, tuple[Any, Any]] = {}
    for event in history.events:
        detail = event.get("detail") or {}
        dedupe = str(detail.get("dedupeId"))
        shape = (event.get("detail-type"), detail)
        if seen.setdefault(dedupe, shape) != shape:
            bad.append(f"{dedupe}: two different events under one dedupeId")
        if (error := _schema_errors(event, validators)) is not None:
            bad.append(f"{dedupe}: not schema-valid: {error}")
    return bad


def _file_matches(event_detail: Mapping[str, Any], item: FileItem) -> bool:
    if item.state == "copied":
        return event_detail.get("key") == item.key and event_detail.get("sha256") == item.sha256
    return event_detail.get("state") == "failed"


def events_match_ledger(history: History) -> list[str]:
    """Each final file and task announced by an event matching its final ledger state."""
    from kie2s3.logic.status import task_state

    bad: list[str] = []
    file_events: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    task_events: dict[str, set[str]] = defaultdict(set)
    for event in history.events:
        detail = event.get("detail") or {}
        if "files" in detail:
            task_events[str(detail.get("taskId"))].add(str(event.get("detail-type")))
        else:
            file_events[(str(detail.get("taskId")), int(detail.get("index", -1)))].append(
                {**detail, "detail-type": event.get("detail-type")}
            )
    for item in _live_files(history):
        if item.state not in FILE_EVENT:
            continue
        announced = [
            d for d in file_events[(item.task_id, item.index)] if d["detail-type"] == FILE_EVENT[item.state]
        ]
        if not any(_file_matches(d, item) for d in announced):
            bad.append(
                f"{item.task_id}#{item.index}: {item.state}, no matching {FILE_EVENT[item.state]} event"
            )
    for task_id, task in sorted(history.tasks.items()):
        state = task_state(task, history.files.get(task_id, []))
        if state in TASK_EVENT and TASK_EVENT[state] not in task_events[task_id]:
            bad.append(f"{task_id}: {state}, no {TASK_EVENT[state]} event")
    return bad


def callbacks_acknowledged(history: History) -> list[str]:
    """A valid callback is answered 200, or 5xx while the ledger or the archive store was failing."""
    return [
        f"{a.task_id} ({a.sample}): HTTP {a.status}"
        + (" with the ledger and the archive answering" if a.status >= 500 else "")
        for a in history.callbacks
        if a.status != 200 and not (a.status >= 500 and a.stores_failing)
    ]


def dlqs_empty(history: History) -> list[str]:
    return [
        f"{name}: {count} message(s) left" for name, count in sorted(history.dlq_messages.items()) if count
    ]


INVARIANTS: dict[str, Callable[[History], list[str]]] = {
    "every copied file stored under its key with its source's bytes and type": stored_exactly,
    "every file sent is copied (or failed for a permanent fault)": never_lost,
    "no source stored twice, no object without a ledger file": stored_once,
    "nothing stored for tasks taken down": nothing_of_taken_down,
    "no incomplete multipart upload": no_incomplete_upload,
    "every task final, consistent with its files": tasks_final,
    "events: one event per dedupeId, schema-valid": events_consistent,
    "events: every final file and task announced as the ledger holds it": events_match_ledger,
    "kie.ai got a 5xx for a valid callback only while the ledger or the archive failed": callbacks_acknowledged,
    "DLQs empty": dlqs_empty,
}


def check(history: History) -> list[Verdict]:
    """Every invariant's verdict, in order."""
    return [Verdict(name, invariant(history)) for name, invariant in INVARIANTS.items()]


# ---------------------------------------------------------------------------------------------- reading


def _sha256_of(body: Any) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: body.read(1024 * 1024), b""):
        digest.update(chunk)
    return digest.hexdigest()


def read_objects(s3: Any, bucket: str, prefix: str) -> dict[str, StoredObject]:
    """Every object under the prefix, its bytes read back and hashed."""
    from botocore.exceptions import ClientError

    objects: dict[str, StoredObject] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            try:
                got = s3.get_object(Bucket=bucket, Key=entry["Key"])
            except ClientError as exc:  # listed, and unreadable: a violation of its own, not a crash
                objects[entry["Key"]] = StoredObject(f"unreadable ({exc})", int(entry["Size"]), "")
                continue
            objects[entry["Key"]] = StoredObject(
                _sha256_of(got["Body"]), int(got["ContentLength"]), str(got.get("ContentType", ""))
            )
    return objects


def read_uploads(s3: Any, bucket: str, prefix: str) -> list[str]:
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return [u["Key"] for u in uploads.get("Uploads", [])]


def read_ledger(table: Any) -> tuple[dict[str, TaskItem], dict[str, list[FileItem]]]:
    """The tasks table scanned whole: its task items and file items (markers left out)."""
    from kie2s3.adapters.ledger import FILE_SK_PREFIX, TASK_SK
    from kie2s3.models import FileItem, TaskItem

    tasks: dict[str, TaskItem] = {}
    files: dict[str, list[FileItem]] = defaultdict(list)
    kwargs: dict[str, Any] = {"ConsistentRead": True}
    while True:
        page = table.scan(**kwargs)
        for raw in page.get("Items", []):
            item: dict[str, Any] = {
                k: (int(v) if type(v).__name__ == "Decimal" else v) for k, v in raw.items()
            }
            plain = {k: v for k, v in item.items() if k not in ("pk", "sk")}
            if item["sk"] == TASK_SK:
                tasks[item["pk"]] = TaskItem.model_validate(plain)
            elif str(item["sk"]).startswith(FILE_SK_PREFIX):
                files[item["pk"]].append(FileItem.model_validate(plain))
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return tasks, dict(files)


def queue_depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def report(verdicts: list[Verdict]) -> tuple[str, bool]:
    """The printed verdicts, and whether every invariant held."""
    return "\n".join(v.line() for v in verdicts), all(v.passed for v in verdicts)
