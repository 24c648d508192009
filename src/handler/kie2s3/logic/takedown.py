"""Takedown: remove a task's archived files, raw callbacks and ledger items, and keep it from coming back."""

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from kie2s3.logic.plan import is_raw_callback, raw_callbacks_prefix
from kie2s3.models import FileItem, TaskItem
from kie2s3.observability import logger
from kie2s3.ports import Guard, Ledger, ObjectStore

# How often a takedown looks again whether the copies it waits for have ended.
POLL_SECONDS = 2.0
# Lambda's longest timeout: no copy opened before the fence runs longer (its lock expires by then).
MAX_WAIT_SECONDS = 900.0
# The HTTP API gives up on a request after 30 s (template.yaml: the API function's timeout is 29 s):
# a callback that read the task before the fence has archived its body by then, or never will.
CALLBACK_GRACE_SECONDS = 30.0


@dataclass
class TakedownReport:
    """What a takedown removed. `locked`: keys Object Lock keeps (hidden behind a delete marker)."""

    task_id: str
    known: bool = True
    removed: list[str] = field(default_factory=list)
    locked: dict[str, int] = field(default_factory=dict)  # key -> versions kept
    ledger_items: int = 0
    waited_seconds: float = 0.0  # for copies opened and callbacks received before the takedown to end


def _tally(report: TakedownReport, kept: Mapping[str, int]) -> None:
    for key, versions in sorted(kept.items()):
        if versions:
            report.locked[key] = versions
        else:
            report.removed.append(key)


def take_down(
    ledger: Ledger,
    store: ObjectStore,
    guard: Guard,
    object_prefix: str,
    task_id: str,
    *,
    bypass_governance: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> TakedownReport:
    """Remove every version of a task's archived files and raw callbacks, and its file items, so
    that one run leaves nothing (but what Object Lock keeps).

    In order: the task is marked taken down (the fence: from then on no callback, `POST /copies`,
    reconciler pass or queued job records, plans or opens a copy of it — a copy's opening write
    and the write of new file items check it), with the keys its files had kept beside it; then
    its files are read again (one recorded before the fence, after the first read, is one more
    key to keep and remove); then the copies opened before the
    fence are waited out (their in-progress idempotency records, each bounded by its lock's expiry,
    a Lambda timeout at most); then every version of those keys is removed; then, once callbacks
    that read the task before the fence have ended (CALLBACK_GRACE_SECONDS after it), every version
    of the raw callbacks; then the file items and source markers (every page of them). Under Object Lock in
    governance mode the versions stay until their retention ends unless `bypass_governance` (which
    needs s3:BypassGovernanceRetention); a delete marker hides them meanwhile, and a second takedown
    finds their keys again. A task the ledger does not know yet (`known` False: its callbacks
    failed so far, kie.ai retries them, a backfill may come) is fenced all the same, and the raw
    callbacks of those in flight removed: nothing of it is recorded or archived later.
    """
    found = ledger.get(task_id)
    keys = _keys(*found) if found else []
    report = TakedownReport(task_id=task_id, known=found is not None)
    ledger.mark_taken_down(task_id, keys)  # first: nothing opens a copy of the task from here on
    fenced_at = time.monotonic()
    # Read again behind the fence: a delivery may have recorded a file (and opened its copy) since
    # the first read; none can from now on.
    fenced = ledger.get(task_id)
    files = fenced[1] if fenced else []
    if fenced and (more := _keys(*fenced)) != keys:
        keys = sorted(set(keys) | set(more))
        ledger.mark_taken_down(task_id, keys)
    report.waited_seconds = _wait_for_copies(guard, task_id, [f.index for f in files], sleep)
    for key in keys:
        _tally(report, store.remove(key, exact=True, bypass_governance=bypass_governance))
    report.waited_seconds += _wait_for_callbacks(fenced_at, sleep)
    raw_callbacks = store.remove(
        raw_callbacks_prefix(object_prefix, task_id),
        exact=False,
        bypass_governance=bypass_governance,
        only=lambda key: is_raw_callback(object_prefix, task_id, key),  # never another task's files
    )
    _tally(report, raw_callbacks)
    report.ledger_items = ledger.delete_files(task_id)
    logger.info(
        "task taken down",
        removed=len(report.removed),
        locked=len(report.locked),
        ledger_items=report.ledger_items,
        waited_seconds=round(report.waited_seconds, 1),
    )
    return report


def _keys(task: TaskItem, files: Sequence[FileItem]) -> list[str]:
    """The keys a takedown removes: its files' and those an earlier takedown kept."""
    return sorted({f.key for f in files} | set(task.taken_down_keys))


def _wait_for_callbacks(fenced_at: float, sleep: Callable[[float], None]) -> float:
    """Wait until a callback that read the task before the fence (its check, then its body's
    PutObject: an S3 object no condition on the ledger can fence) has ended; how long."""
    left = fenced_at + CALLBACK_GRACE_SECONDS - time.monotonic()
    if left <= 0:
        return 0.0
    started = time.monotonic()
    logger.info("waiting for callbacks in flight to end", seconds_left=round(left, 1))
    sleep(left)
    return time.monotonic() - started


def _wait_for_copies(guard: Guard, task_id: str, indexes: list[int], sleep: Callable[[float], None]) -> float:
    """Wait until no copy of these files is under way (each ends, or its lock expires; never longer
    than a Lambda timeout); how long."""
    started = time.monotonic()
    while (ends_ms := guard.in_flight(task_id, indexes)) is not None:
        if time.monotonic() - started > MAX_WAIT_SECONDS:
            logger.warning("copies still marked under way past a Lambda timeout: not waiting longer")
            break
        left = ends_ms / 1000 - time.time()
        logger.info("waiting for copies under way to end", seconds_left=round(max(left, 0), 1))
        sleep(min(POLL_SECONDS, max(left, 0.0) + 0.05))
    return time.monotonic() - started
