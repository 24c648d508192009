"""The outbox: the ledger's DynamoDB stream turned into EventBridge events as files and tasks settle.

Nothing on the copy path puts an event: a function that dies right after its ledger write loses
none, because the write itself is the outbox entry. The stream hands each write to this use case at
least once, in order per task; every event carries a `dedupeId`, equal for equal events, so the
duplicates that redelivery (or two files settling at once) brings can be dropped by consumers.
"""

import hashlib
import json
from collections.abc import Sequence
from typing import Any, Final

from aws_lambda_powertools.metrics import MetricUnit
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt

from kie2s3.errors import RetryableError
from kie2s3.logic.services import Services
from kie2s3.logic.status import document, file_status
from kie2s3.models import BusEvent, FileItem, Outcome, StatusDocument, TaskItem
from kie2s3.observability import logger, metrics
from kie2s3.ports import MAX_PUT_BYTES, TOO_LARGE, FileChange, TaskChange, batches, entry_size

# The detail-type of each final state (design.md, Contract additions): files and tasks that are
# still pending or copying have none.
FILE_EVENTS: Final = {"copied": "File Archived", "failed": "File Failed"}
TASK_EVENTS: Final = {"copied": "Task Archived", "failed": "Task Failed", "ignored": "Task Ignored"}
# Events carry no presigned links: a link differs at every signing (and the stream function may not
# presign). The status document's fields that hold them are left out.
_LINKS: Final = frozenset({"url", "url_expires_at"})
# A task item's attributes its status document shows: a write that changes none of them (a touch, a
# duplicate delivery) cannot change the task's state, and calls for no event.
_SHOWN_TASK_FIELDS: Final = ("family", "outcome", "reason", "files_not_planned", "taken_down_at")
# An event too large for PutEvents is trimmed to fit, never refused (its stream record would be
# delivered again and again, holding up its shard): a task's files past those that fit are left out
# (`filesOmitted` counts them), and, should that not do, free text is cut to this many characters.
_FREE_TEXT: Final = ("reason", "error", "source")
_SHORT_TEXT: Final = 1024

# The task and its files as read for one batch of stream records, by task id (None: unknown task).
TaskReads = dict[str, tuple[TaskItem, list[FileItem]] | None]


def events_of(services: Services, change: FileChange | TaskChange | None, reads: TaskReads) -> list[BusEvent]:
    """The events one ledger write calls for: a file that became `copied` or `failed` has its event
    (unless its task, read now, was taken down), then (like any write that changes what a task's
    document shows) its task's, if the task's state, read now, is final. `reads` keeps each task's read for the rest of the batch: every write of the
    batch was made before it was read, so one read shows them all.
    """
    if isinstance(change, FileChange):
        item = change.after
        if item is None or item.state not in FILE_EVENTS or item.state == change.before:
            return []
        task_events = _task_events(services, change.task_id, reads)
        if _taken_down(reads[change.task_id]):  # its files are gone: `Task Ignored` is the last word
            return task_events
        return [_file_event(item), *task_events]
    if isinstance(change, TaskChange) and _shows_change(change):
        return _task_events(services, change.task_id, reads)
    return []


def _taken_down(found: tuple[TaskItem, list[FileItem]] | None) -> bool:
    return found is not None and found[0].taken_down_at is not None


def _shows_change(change: TaskChange) -> bool:
    if change.after is None:  # removed
        return False
    if change.before is None:  # created
        return True
    return any(change.before.get(f) != change.after.get(f) for f in _SHOWN_TASK_FIELDS)


def _file_event(item: FileItem) -> BusEvent:
    """The file's entry of its task's status document, with its task id."""
    shown = file_status(item).model_dump(mode="json", by_alias=True, exclude=set(_LINKS))
    # The file's identity within its task is its canonical source (design.md): a digest keeps it short.
    subject = f"file-{hashlib.sha256(item.source.encode()).hexdigest()[:16]}"
    return _event(
        FILE_EVENTS[item.state], item.task_id, subject, item.state, {"taskId": item.task_id, **shown}
    )


def _task_events(services: Services, task_id: str, reads: TaskReads) -> list[BusEvent]:
    """The task's event when its state, as the ledger holds it now, is final; else none."""
    if task_id not in reads:
        reads[task_id] = services.ledger.get(task_id)
    found = reads[task_id]
    if found is None:
        return []
    task, files = found
    # A success is recorded first, its files just after: between the two writes it has none yet
    # (its state would read `ignored`), so its event waits for the files' own writes. A task taken
    # down has its event (`Task Ignored`, "taken down") whether or not its files are gone yet.
    if task.outcome is Outcome.SUCCESS and not files and not task.taken_down_at:
        return []
    status: StatusDocument = document(task, files)
    if status.state not in TASK_EVENTS:
        return []
    shown = status.model_dump(mode="json", by_alias=True, exclude={"files": {"__all__": set(_LINKS)}})
    return [_event(TASK_EVENTS[status.state], task_id, "task", status.state, shown)]


def _event(detail_type: str, task_id: str, subject: str, state: str, detail: dict[str, Any]) -> BusEvent:
    """An event whose `dedupeId` names its task, subject and state, and a digest of its detail: equal
    for equal events, whoever emitted them, and different when a task or file settles again differently
    (a file that failed, was retried and failed for another reason; a task given one more file). The
    digest is of the whole detail, also when the event is trimmed to fit PutEvents."""
    digest = hashlib.sha256(json.dumps(detail, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    dedupe_id = f"{task_id}/{subject}/{state}/{digest[:16]}"
    event = _bus_event(detail_type, dedupe_id, detail)
    if entry_size(event) <= MAX_PUT_BYTES:
        return event
    shortened = {k: _shortened(v) if k in _FREE_TEXT else v for k, v in detail.items()}
    for candidate in (detail, shortened):
        if (trimmed := _with_most_files(detail_type, dedupe_id, candidate)) is not None:
            return trimmed
    # Not reached (a task's fields without files, its text cut, are a few KiB): the bus refuses it.
    return _bus_event(detail_type, dedupe_id, _keeping(shortened, 0), trimmed=True)


def _bus_event(
    detail_type: str, dedupe_id: str, detail: dict[str, Any], *, trimmed: bool = False
) -> BusEvent:
    return BusEvent(
        detail_type=detail_type,
        dedupe_id=dedupe_id,
        detail=json.dumps({**detail, "dedupeId": dedupe_id}, separators=(",", ":")),
        trimmed=trimmed,
    )


def _shortened(value: Any) -> Any:
    return f"{value[:_SHORT_TEXT]}…" if isinstance(value, str) and len(value) > _SHORT_TEXT else value


def _keeping(detail: dict[str, Any], count: int) -> dict[str, Any]:
    """The detail with only its first `count` files, and how many it leaves out (none for a file)."""
    files = detail.get("files")
    if files is None or count >= len(files):
        return detail
    return {**detail, "files": files[:count], "filesOmitted": len(files) - count}


def _with_most_files(detail_type: str, dedupe_id: str, detail: dict[str, Any]) -> BusEvent | None:
    """The trimmed event keeping the most of the detail's files that PutEvents takes (an event grows
    with every file kept); None when even none fits."""
    best = None
    low, high = 0, len(detail.get("files") or [])
    while low <= high:
        count = (low + high) // 2
        event = _bus_event(detail_type, dedupe_id, _keeping(detail, count), trimmed=True)
        if entry_size(event) <= MAX_PUT_BYTES:
            best, low = event, count + 1
        else:
            high = count - 1
    return best


def publish(services: Services, collected: Sequence[tuple[str, Sequence[BusEvent]]]) -> set[str]:
    """Put the events of a batch of stream records on the bus, each dedupeId once, in their order;
    return the ids of the records whose events EventBridge did not take (they are to be delivered
    again). Refused events are put again with the retry policy's backoff before they count.
    """
    unique, owners = _deduplicated(collected)
    # Files before tasks, where EventBridge keeps the order (it does not promise to).
    ordered = sorted(unique.values(), key=lambda e: e.detail_type in TASK_EVENTS.values())
    failed: dict[str, str] = {}
    for batch in batches(ordered):
        failed |= _put(services, batch)
    dropped = _drop_too_large(failed)
    _count(unique, failed, dropped)
    return {record_id for dedupe_id in failed for record_id in owners[dedupe_id]}


def _deduplicated(
    collected: Sequence[tuple[str, Sequence[BusEvent]]],
) -> tuple[dict[str, BusEvent], dict[str, set[str]]]:
    """Each dedupeId's event (the first seen), and the ids of the records that produced it."""
    owners: dict[str, set[str]] = {}
    unique: dict[str, BusEvent] = {}
    for record_id, events in collected:
        for event in events:
            unique.setdefault(event.dedupe_id, event)
            owners.setdefault(event.dedupe_id, set()).add(record_id)
    return unique, owners


def _drop_too_large(failed: dict[str, str]) -> list[str]:
    """Take the events too large for any request out of `failed` (logged): delivered again, one would
    be as large, and hold up its shard until its record expires. `_event` trims every event to fit."""
    dropped = [d for d, error in failed.items() if error == TOO_LARGE]
    for dedupe_id in dropped:
        logger.error("event too large for any request: not published", dedupe_id=dedupe_id)
        del failed[dedupe_id]
    return dropped


def _count(unique: dict[str, BusEvent], failed: dict[str, str], dropped: list[str]) -> None:
    """The metrics and logs of one publish: events trimmed, published, and failed (with their errors)."""
    if trimmed := [e.dedupe_id for e in unique.values() if e.trimmed]:
        metrics.add_metric(name="EventsTrimmed", unit=MetricUnit.Count, value=len(trimmed))
        logger.warning("events trimmed to fit PutEvents", dedupe_ids=trimmed)
    if published := len(unique) - len(failed) - len(dropped):
        metrics.add_metric(name="EventsPublished", unit=MetricUnit.Count, value=published)
    if failed:
        metrics.add_metric(name="EventsFailed", unit=MetricUnit.Count, value=len(failed))
        for dedupe_id, error in failed.items():
            logger.error("event not published", dedupe_id=dedupe_id, error=error)


def _put(services: Services, batch: list[BusEvent]) -> dict[str, str]:
    """Put one request's events, and again those refused while the retry policy allows (its backoff,
    as a transfer's); the dedupeIds still refused, with their last error."""
    errors: dict[str, str] = {}
    pending = batch

    def attempt() -> list[BusEvent]:
        """One PutEvents of the events still pending; those to put again (never one too large)."""
        nonlocal pending
        try:
            results = services.bus.put(pending)
        except RetryableError as exc:
            results = [exc.reason] * len(pending)
        for event, result in zip(pending, results, strict=True):
            if result is None:
                errors.pop(event.dedupe_id, None)
            else:
                errors[event.dedupe_id] = result
        pending = [e for e in pending if errors.get(e.dedupe_id) not in (None, TOO_LARGE)]
        return pending

    def refused(state: RetryCallState) -> None:
        logger.warning(
            "events refused",
            events=len(pending),
            attempt=state.attempt_number,
            error=errors[pending[0].dedupe_id],
        )

    Retrying(
        retry=retry_if_result(bool),
        wait=services.retry.backoff(),
        stop=stop_after_attempt(services.retry.attempts),
        before_sleep=refused,
        retry_error_callback=lambda state: None,  # what is still refused is in `errors`
    )(attempt)
    return errors
