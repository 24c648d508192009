"""Takedown: remove a task's archived files, raw callbacks and ledger items, and keep it from coming back."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from kie2s3.logic.plan import raw_callbacks_prefix
from kie2s3.logic.ports import Ledger, ObjectStore
from kie2s3.observability import logger


@dataclass
class TakedownReport:
    """What a takedown removed. `locked`: keys Object Lock keeps (hidden behind a delete marker)."""

    task_id: str
    known: bool = True
    removed: list[str] = field(default_factory=list)
    locked: dict[str, int] = field(default_factory=dict)  # key -> versions kept
    ledger_items: int = 0
    in_flight: int = 0  # files pending or copying when it ran: a copy may still store one


def _tally(report: TakedownReport, kept: Mapping[str, int]) -> None:
    for key, versions in sorted(kept.items()):
        if versions:
            report.locked[key] = versions
        else:
            report.removed.append(key)


def take_down(
    ledger: Ledger, store: ObjectStore, object_prefix: str, task_id: str, *, bypass_governance: bool = False
) -> TakedownReport:
    """Remove every version of a task's archived files and raw callbacks, and its file items.

    The task item stays, marked taken down with the keys its files had: from then on no callback,
    `POST /copies` or reconciler pass records or archives the task again, and a second takedown
    removes those keys again (a copy that was running when the first one ran may have stored its
    file after it). Under Object Lock in governance mode the versions stay until their retention
    ends unless `bypass_governance` (which needs s3:BypassGovernanceRetention); a delete marker
    hides them meanwhile. An unknown task: nothing is done (`known` is False).
    """
    found = ledger.get(task_id)
    if found is None:
        return TakedownReport(task_id=task_id, known=False)
    task, files = found
    keys = sorted({f.key for f in files} | set(task.taken_down_keys))
    report = TakedownReport(task_id=task_id, in_flight=sum(f.state in ("pending", "copying") for f in files))
    ledger.mark_taken_down(task_id, keys)  # first: nothing archives the task again from here on
    for key in keys:
        _tally(report, store.remove(key, exact=True, bypass_governance=bypass_governance))
    raw_prefix = raw_callbacks_prefix(object_prefix, task_id)
    _tally(report, store.remove(raw_prefix, exact=False, bypass_governance=bypass_governance))
    report.ledger_items = ledger.delete_files(task_id)
    logger.info(
        "task taken down",
        removed=len(report.removed),
        locked=len(report.locked),
        ledger_items=report.ledger_items,
        in_flight=report.in_flight,
    )
    return report
