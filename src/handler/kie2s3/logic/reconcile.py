"""The reconciler: nothing stays unfinished silently — stuck copies are re-sent, running tasks re-read."""

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from kie2s3.errors import BadRequestError, Kie2S3Error
from kie2s3.families import PARSERS, parser_for, task_id_of
from kie2s3.logic.plan import accept, copy_job, dispatch, is_raw_callback, raw_callbacks_prefix
from kie2s3.logic.receive import json_object, parse_callback
from kie2s3.logic.services import Services
from kie2s3.models import MAX_ANSWER_BYTES, CopyJob, FileItem, Outcome, TaskItem
from kie2s3.observability import logger, metrics, tracer
from kie2s3.ports import OPEN_FILE, OPEN_TASK

# kie.ai deletes generated files after 14 days (kie-api.md §4.5): nothing older is chased.
KIE_RETENTION = timedelta(days=14)
# A copy job is taken as lost when its file has not moved for longer than a worker can run
# (900 s) plus the queue's retries.
STALE_FILE_AFTER = timedelta(minutes=30)
# How often a task still running at kie.ai is asked about (record-info allows 3 calls/s per task).
POLL_TASK_EVERY = timedelta(minutes=5)
# A multipart upload this old was left by a killed invocation (a copy runs at most 900 s): the same
# age as the abort-incomplete-multipart rule of a bucket the stack creates (template.yaml).
STALE_UPLOAD_AFTER = timedelta(days=1)


@dataclass
class ReconcileReport:
    """What one pass did."""

    resent: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    completed_tasks: list[str] = field(default_factory=list)
    still_running: list[str] = field(default_factory=list)
    replayed: list[str] = field(default_factory=list)  # unrecognised tasks a parser now knows
    still_unrecognised: list[str] = field(default_factory=list)
    aborted_uploads: list[str] = field(default_factory=list)  # keys of stale multipart uploads
    errors: list[str] = field(default_factory=list)


def report_answer(report: ReconcileReport, budget: int = MAX_ANSWER_BYTES) -> dict[str, Any]:
    """The pass's report as the function answers it, within `budget` bytes of JSON (Lambda carries
    at most 6 MB of an answer, and a pass over a large backlog may name more items than that).

    Every list is whole while the report fits; past that, each keeps its first entries within an
    even share of the budget, the smaller lists first (what one leaves of its share goes to the
    larger), and `omitted` counts, by list, the entries left out (the metrics and the log count all).
    """
    whole = asdict(report)
    if len(json.dumps(whole)) <= budget:
        return whole
    kept: dict[str, Any] = {}
    omitted: dict[str, int] = {}
    skeleton = {**{name: [] for name in whole}, "omitted": dict.fromkeys(whole, 10**9)}
    spare = budget - len(json.dumps(skeleton))
    by_size = sorted(whole, key=lambda name: len(json.dumps(whole[name])))
    for position, name in enumerate(by_size):
        entries, share = whole[name], spare // (len(by_size) - position)
        count, used = 0, 0
        while count < len(entries) and used + (size := len(json.dumps(entries[count])) + 2) <= share:
            used, count = used + size, count + 1
        kept[name], spare = entries[:count], spare - used
        if count < len(entries):
            omitted[name] = len(entries) - count
    return {**{name: kept[name] for name in whole}, "omitted": omitted}


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


@tracer.capture_method(capture_response=False)
def reconcile(
    services: Services, now: datetime | None = None, deadline: float | None = None
) -> ReconcileReport:
    """One pass over the ledger's open items (the sparse `open-items` index), oldest first.

    Files pending or copying for over 30 minutes get their job sent again (the copy is idempotent,
    so a job that was only slow costs nothing); tasks still running at kie.ai are re-read from
    record-info and completed when final. Anything created more than 14 days ago is closed as
    expired at kie.ai. Multipart uploads under OBJECT_PREFIX begun over a day ago are aborted.
    Safe to run concurrently with itself and with the workers.
    """
    now = now or datetime.now(UTC)
    report = ReconcileReport()
    oldest = _iso(now - KIE_RETENTION)
    jobs: list[CopyJob] = []
    for raw in services.ledger.open_items(OPEN_FILE, _iso(now - STALE_FILE_AFTER)):
        item = FileItem.model_validate(raw)
        name = f"{item.task_id}#{item.index}"
        found = services.ledger.get(item.task_id)
        task = found[0] if found else None
        if task is None or task.created_at < oldest:
            services.ledger.mark_failed(item.task_id, item.index, "expired at kie.ai (14-day retention)")
            report.expired.append(name)
            continue
        # Touching the item puts it at the back of the line: re-sent again only if still stuck later.
        services.ledger.touch_file(item.task_id, item.index, item.state)
        jobs.append(copy_job(item, task))
        report.resent.append(name)
    dispatch(services, jobs, deadline)
    for raw in services.ledger.open_items(OPEN_TASK, _iso(now - POLL_TASK_EVERY)):
        task = TaskItem.model_validate(raw)
        _follow_task(services, task, oldest, report, deadline)
    try:
        report.aborted_uploads = abort_stale_uploads(services, now)
    except Kie2S3Error as exc:
        report.errors.append(f"stale uploads: {exc.reason}")
    metrics.add_metric(name="ReconcilerResent", unit=MetricUnit.Count, value=len(report.resent))
    metrics.add_metric(
        name="ReconcilerCompletedTasks", unit=MetricUnit.Count, value=len(report.completed_tasks)
    )
    logger.info(
        "reconcile pass",
        resent=len(report.resent),
        expired=len(report.expired),
        completed_tasks=len(report.completed_tasks),
        still_running=len(report.still_running),
        aborted_uploads=len(report.aborted_uploads),
        errors=len(report.errors),
    )
    return report


def abort_stale_uploads(services: Services, now: datetime) -> list[str]:
    """Abort kie2s3's multipart uploads (under OBJECT_PREFIX) begun before `now` - 1 day; their keys.

    A bucket the stack creates has a lifecycle rule that does this; one given as ExistingBucketName
    may not, and kie2s3 cannot add one to a bucket it does not own. An empty OBJECT_PREFIX would
    reach uploads that are not kie2s3's: then nothing is aborted.
    """
    prefix = services.settings.object_prefix
    if not prefix:
        return []
    aborted = services.store.abort_stale_uploads(prefix, now - STALE_UPLOAD_AFTER)
    if aborted:
        logger.info("stale multipart uploads aborted", count=len(aborted), keys=aborted[:20])
    return aborted


def _follow_task(
    services: Services, task: TaskItem, oldest: str, report: ReconcileReport, deadline: float | None
) -> None:
    if task.created_at < oldest:
        services.ledger.close_task(task.task_id, "expired at kie.ai (14-day retention)")
        report.expired.append(task.task_id)
        return
    if task.outcome is Outcome.UNRECOGNISED:
        _replay(services, task, report, deadline)
        return
    parser = parser_for(task.family, PARSERS)
    if parser is None or not parser.record_info_path:
        services.ledger.close_task(task.task_id, f"no record-info for family {task.family!r}")
        report.expired.append(task.task_id)
        return
    try:
        record = services.kie.record_info(parser.record_info_path, task.task_id)
        parsed = parser.parse_record(task.task_id, record)
    except (Kie2S3Error, ValueError) as exc:
        # One task kie.ai cannot answer for must not stop the pass; it is tried again next time.
        services.ledger.touch_task(task.task_id)
        report.errors.append(f"{task.task_id}: {getattr(exc, 'reason', type(exc).__name__)}")
        return
    if parsed.outcome is Outcome.NOT_FINAL:
        services.ledger.touch_task(task.task_id)
        report.still_running.append(task.task_id)
        return
    accept(services, parsed, deadline)
    report.completed_tasks.append(task.task_id)


def _replay(services: Services, task: TaskItem, report: ReconcileReport, deadline: float | None) -> None:
    """Parse an unrecognised task's archived callbacks again, newest first, with this version's
    parsers (and each body's own `?family=` hint); the first one they recognise is accepted.

    A body is used only when its task id is the one recorded, the id that was authenticated.
    """
    prefix = raw_callbacks_prefix(services.settings.object_prefix, task.task_id)
    try:
        for key in services.store.raw_keys(prefix):
            if not is_raw_callback(services.settings.object_prefix, task.task_id, key):
                continue  # another task's file (is_raw_callback): never read, however large
            raw, hint = services.store.get_raw(key)
            try:
                body = json_object(raw)
                if task_id_of(body) != task.task_id:
                    continue
            except BadRequestError:
                continue
            parsed = parse_callback(body, task.task_id, hint)
            if parsed.outcome is not Outcome.UNRECOGNISED:
                recorded = accept(services, parsed, deadline)
                if recorded.outcome is not Outcome.UNRECOGNISED:
                    logger.info("unrecognised task replayed", family=parsed.family, raw_key=key)
                    report.replayed.append(task.task_id)
                    return
    except Kie2S3Error as exc:
        report.errors.append(f"{task.task_id}: {exc.reason}")
    services.ledger.touch_task(task.task_id)
    report.still_unrecognised.append(task.task_id)
