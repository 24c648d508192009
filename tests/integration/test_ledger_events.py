"""Whatever the ledger's writers leave, every event the outbox builds from it fits its schema.

The events function builds each event from the ledger as it reads it (kie2s3.logic.outbox): a file
`copied` must hold its bucket, bytes, SHA-256 and Content-Type, one `failed` its reason, a task its
family. This draws sequences of the writes the callbacks, the copies, the reconciler and a takedown
make (the real Ledger on the local DynamoDB), and after each one builds the events the stream record
of that write calls for, as the events function does.
"""

import json
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
from devstack.stack import Stack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kie2s3.adapters.ledger import Ledger
from kie2s3.logic.outbox import events_of
from kie2s3.models import BusEvent, CopyResult, FileItem, Outcome, TaskItem
from kie2s3.ports import FileChange, TaskChange, now_iso

SCHEMAS = {
    schema["properties"]["detail-type"]["const"]: jsonschema.Draft202012Validator(schema)
    for schema in (
        json.loads(p.read_text())
        for p in sorted((Path(__file__).resolve().parents[2] / "events" / "schemas").glob("*.json"))
    )
}
FILES = 2

_RESULTS = st.builds(
    CopyResult,
    bucket=st.just("archive-bucket"),
    key=st.just("kie/placeholder.png"),
    bytes=st.integers(min_value=0, max_value=5 * 1024**3),
    sha256=st.text("0123456789abcdef", min_size=64, max_size=64),
    content_type=st.sampled_from(["image/png", "video/mp4", "application/octet-stream"]),
    source_unstable=st.booleans(),
)
_REASONS = st.text(min_size=1, max_size=40)
_INDEXES = st.integers(min_value=0, max_value=FILES - 1)
# One write of the ledger's: what it does, to which file, with what.
_COPIED = st.tuples(st.just("copied"), _INDEXES, _RESULTS)
_WRITES = st.one_of(
    _COPIED,
    st.tuples(st.just("pending"), _INDEXES, st.none() | _REASONS),
    st.tuples(st.just("failed"), _INDEXES, _REASONS),
    st.tuples(st.just("touch"), _INDEXES, st.sampled_from(["pending", "copying"])),
    st.tuples(st.just("task"), st.just(0), st.sampled_from(list(Outcome))),
    st.tuples(st.just("takedown"), st.just(0), st.none()),
)
# kie.ai's outcome of the task as first recorded: a success the most often (its files are copied).
_OUTCOMES = st.sampled_from([Outcome.SUCCESS, Outcome.SUCCESS, *Outcome])


def _write(ledger: Ledger, task_id: str, write: tuple[str, int, Any]) -> None:
    kind, index, value = write
    if kind == "pending":
        ledger.mark_pending(task_id, index, error=value)
    elif kind == "failed":
        ledger.mark_failed(task_id, index, value)
    elif kind == "copied":
        ledger.mark_copied(task_id, index, value.model_copy(update={"key": f"kie/{task_id}/{index:02d}.png"}))
    elif kind == "touch":
        ledger.touch_file(task_id, index, value)
    elif kind == "task":
        ledger.save_task(_task(task_id, value))
    else:
        ledger.mark_taken_down(task_id, [])
        ledger.delete_files(task_id)


def _task(task_id: str, outcome: Outcome) -> TaskItem:
    reason = "kie.ai: generation failed" if outcome is Outcome.FAILED else None
    return TaskItem(
        task_id=task_id,
        family="market",
        outcome=outcome,
        reason=reason,
        created_at=now_iso(),
        updated_at=now_iso(),
    )


def _schema_errors(event: BusEvent) -> list[str]:
    whole = {"source": "kie2s3", "detail-type": event.detail_type, "detail": json.loads(event.detail)}
    return [f"{event.detail_type}: {e.message}" for e in SCHEMAS[event.detail_type].iter_errors(whole)]


@settings(
    max_examples=30, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
)
@given(
    outcome=_OUTCOMES,
    writes=st.lists(_WRITES, max_size=8),
    drained=st.lists(_RESULTS, min_size=FILES, max_size=FILES),
)
def _events_property(
    ledger: Ledger, outcome: Outcome, writes: list[tuple[str, int, Any]], drained: list[CopyResult]
) -> None:
    """The drawn writes, then every file copied (as a drain ends), each write's events checked."""
    task_id = f"prop{uuid.uuid4().hex}"
    services: Any = SimpleNamespace(ledger=ledger)  # the outbox reads the ledger only
    ledger.save_task(_task(task_id, outcome))
    files = [
        FileItem(
            task_id=task_id,
            index=n,
            source=f"https://tempfile.aiquickdraw.com/p/{n}.png",
            kind="image",
            key=f"kie/{task_id}/{n:02d}.png",
            updated_at=now_iso(),
        )
        for n in range(FILES)
    ]
    assert ledger.add_files(files) == FILES
    errors = [
        e
        for event in events_of(services, TaskChange(task_id, None, {"task_id": task_id}), {})
        for e in _schema_errors(event)
    ]
    for write in [*writes, *(("copied", n, result) for n, result in enumerate(drained))]:
        kind, index, _ = write
        before = ledger.file(task_id, index)
        _write(ledger, task_id, write)
        if kind in ("task", "takedown"):
            change: FileChange | TaskChange = TaskChange(task_id, {"outcome": "before"}, {"outcome": "after"})
        else:
            change = FileChange(task_id, before.state if before else None, ledger.file(task_id, index))
        errors += [e for event in events_of(services, change, {}) for e in _schema_errors(event)]
    assert errors == [], (writes, ledger.get(task_id))


def test_ledger_events_every_event_built_from_what_the_writers_leave_fits_its_schema(stack: Stack) -> None:
    _events_property(ledger=Ledger(stack.tasks_table()))
