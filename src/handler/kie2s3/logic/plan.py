"""Planning: the deterministic destination of each file, and dispatching copy jobs."""

import random
import re
import time
from collections.abc import Iterable, Sequence
from datetime import datetime

from aws_lambda_powertools.metrics import MetricUnit

from kie2s3.errors import Kie2S3Error, RetryableError
from kie2s3.keys import key_template
from kie2s3.logic.copy import copy_file
from kie2s3.logic.services import Services
from kie2s3.models import (
    MAX_URL_CHARS,
    MAX_URLS_PER_REQUEST,
    CopyJob,
    FileItem,
    Outcome,
    ParsedCallback,
    SourceFile,
    TaskItem,
)
from kie2s3.observability import logger, metrics
from kie2s3.ports import now_iso
from kie2s3.settings import Settings
from kie2s3.sources import SourcePolicy, canonical_url


def object_key(settings: Settings, task: TaskItem, index: int, url: str) -> str:
    """Where a file lands, by the KeyTemplate (default `<prefix><taskId>/<index><suffix>`), from what
    the ledger holds of its task (family, model, first recorded); computed once, when the file is
    recorded, and stored: never again, whatever the template or the task become later."""
    return key_template(settings.key_template).render(
        prefix=settings.object_prefix,
        task_id=task.task_id,
        family=task.family,
        model=task.model,
        index=index,
        url=url,
        created_at=datetime.fromisoformat(task.created_at),
    )


def raw_callbacks_prefix(prefix: str, task_id: str) -> str:
    """The folder of a task's archived callback bodies, beside its files."""
    return f"{prefix}{task_id}/callbacks/"


def raw_callback_key(prefix: str, task_id: str, received_ms: int, digest: str) -> str:
    """Where a callback's raw body is archived: its arrival (ms) first, so keys sort by it."""
    return f"{raw_callbacks_prefix(prefix, task_id)}{received_ms}-{digest[:16]}.json"


# The name raw_callback_key gives a body in its task's folder (the digest is hexdigest()'s).
_RAW_CALLBACK_NAME = re.compile(r"[0-9]+-[0-9a-f]{16}\.json")


def is_raw_callback(prefix: str, task_id: str, key: str) -> bool:
    """Whether a key is one of the task's archived callback bodies, as raw_callback_key names them.

    A listing of raw_callbacks_prefix is not enough: with a placeholder before {taskId} in the
    KeyTemplate, another task's files can lie in that folder (task `callbacks` of family `market`,
    under `{prefix}{family}/{taskId}/…`, in task `market`'s), and they are never its callbacks.
    """
    folder = raw_callbacks_prefix(prefix, task_id)
    return key.startswith(folder) and _RAW_CALLBACK_NAME.fullmatch(key[len(folder) :]) is not None


# How often planning re-reads the task after a concurrent delivery claimed an index or source first
# (each round lets at least one racing delivery through), and the jittered pause between rounds
# (random, not secrets: a pause needs no cryptographic randomness).
_PLAN_ATTEMPTS = 10
_PLAN_PAUSE_SECONDS = 0.02


def refusal(policy: SourcePolicy, url: str) -> str | None:
    """Why the source policy refuses a URL as written (scheme, host, credentials, literal address)."""
    try:
        policy.check(url)
    except Kie2S3Error as exc:
        return exc.reason
    return None


def by_source(files: Iterable[SourceFile]) -> dict[str, SourceFile]:
    """The files by their identity, their canonical source: each once, as the list first names it
    (a later entry under another query string or spelling is the same file)."""
    found: dict[str, SourceFile] = {}
    for file in files:
        found.setdefault(canonical_url(file.url), file)
    return found


def capped(files: Iterable[SourceFile]) -> tuple[tuple[SourceFile, ...], int]:
    """The files one delivery may plan, and how many distinct sources it names past them.

    The cap (MAX_URLS_PER_REQUEST) counts distinct canonical sources, never list entries: the first
    ones the list names are kept, each once, in its order.
    """
    distinct = tuple(by_source(files).values())
    return distinct[:MAX_URLS_PER_REQUEST], max(0, len(distinct) - MAX_URLS_PER_REQUEST)


def plan_files(services: Services, task_id: str, family: str, files: Sequence[SourceFile]) -> list[CopyJob]:
    """Record each new source of the task in the ledger and return the jobs to send.

    A file is its canonical source URL, whatever its position in this list or an earlier one: a
    source the ledger knows gets no second item (a `failed` one is given another job, with the URL
    given now), a new one gets an item with the next free index and its key, created in one
    conditional write with its source marker. When a concurrent delivery claimed an index or a
    source first, the task is read again and planned again. Only the delivery that creates an
    item sends its job (the reconciler re-sends lost ones). A source the policy refuses is
    recorded `failed` with the reason and gets no job.
    """
    recorded = _record_new_sources(services, task_id, family, files)
    if recorded is None:
        return []
    task, known, created = recorded
    jobs: list[CopyJob] = []
    for source, file in by_source(files).items():
        item = known[source]
        if item.index in created:
            if item.state == "pending":
                jobs.append(copy_job(item, task))
        elif (job := _job_again(services, task, item, file.url)) is not None:
            jobs.append(job)
    return jobs


def _record_new_sources(
    services: Services, task_id: str, family: str, files: Sequence[SourceFile]
) -> tuple[TaskItem, dict[str, FileItem], set[int]] | None:
    """Record the sources the ledger lacks, read again and planned again while concurrent deliveries
    claim indexes or sources first: the task, every item by source, and the indexes created here
    (in any round: one whose write went through in part, add_files' doc, created some). None when
    the task is taken down (nothing more is recorded)."""
    created: set[tuple[int, str]] = set()  # (index, canonical source) of the items created here
    for attempt in range(_PLAN_ATTEMPTS):
        found = services.ledger.get(task_id)
        task = found[0] if found else _unrecorded(task_id, family)
        if task.taken_down_at:
            logger.info("task taken down: nothing planned", taken_down_at=task.taken_down_at)
            return None
        known = {canonical_url(f.source): f for f in (found[1] if found else ())}
        new = _new_items(services, task, known, files)
        written = services.ledger.add_files(new)
        created |= {(item.index, item.source) for item in new[:written]}
        if written == len(new):
            return (
                task,
                known,
                {item.index for item in known.values() if (item.index, item.source) in created},
            )
        time.sleep(random.uniform(0, _PLAN_PAUSE_SECONDS * (attempt + 1)))  # noqa: S311  # nosec B311
    raise RetryableError("files of this task are being recorded concurrently: try again")


def _job_again(services: Services, task: TaskItem, item: FileItem, url: str) -> CopyJob | None:
    """Another job for a known source that `failed`, from the URL given now (when the policy takes it
    and the item is moved back to pending); None for any other known source."""
    if (
        item.state == "failed"
        and refusal(services.policy, url) is None
        and services.ledger.mark_pending(task.task_id, item.index, source_url=url)
    ):
        return copy_job(item.model_copy(update={"source_url": url}), task)
    return None


def _unrecorded(task_id: str, family: str) -> TaskItem:
    """What keys are made of when the task item is missing (`accept` records it before planning)."""
    now = now_iso()
    return TaskItem(task_id=task_id, family=family, outcome=Outcome.SUCCESS, created_at=now, updated_at=now)


def _new_items(
    services: Services, task: TaskItem, known: dict[str, FileItem], files: Sequence[SourceFile]
) -> list[FileItem]:
    """Items for the sources `known` lacks (added to it), indexed after the highest index known."""
    task_id = task.task_id
    index = max((f.index for f in known.values()), default=-1) + 1
    new: list[FileItem] = []
    for source, file in by_source(files).items():
        if source in known:
            continue
        item = FileItem(
            task_id=task_id,
            index=index,
            source=source,
            source_url=file.url,
            found_by="net" if file.found_by == "net" else None,
            kind=file.kind,
            key=object_key(services.settings, task, index, source),
            bucket=services.store.bucket,
            updated_at=now_iso(),
        )
        if (reason := refusal(services.policy, file.url)) is not None:
            item = item.model_copy(update={"state": "failed", "error": reason})
            logger.warning("source refused", index=index, source=source, reason=reason)
        known[source] = item
        new.append(item)
        index += 1
    return new


def copy_job(item: FileItem, task: TaskItem) -> CopyJob:
    """The job that copies a recorded file to its stored key: from its full URL (only items older
    than it lack one), with its task's family and model for the object's metadata and tags."""
    return CopyJob(
        task_id=item.task_id,
        index=item.index,
        source=item.source_url or item.source,
        kind=item.kind,
        family=task.family,
        key=item.key,
        model=task.model,
    )


def _netted(services: Services, parsed: ParsedCallback) -> ParsedCallback:
    """Keep the files the safety net found only where the source policy allows them; a success that
    is left with none is UNRECOGNISED (logged as an error and counted, its raw body kept)."""
    kept = tuple(f for f in parsed.files if f.found_by != "net" or refusal(services.policy, f.url) is None)
    if skipped := len(parsed.files) - len(kept):
        metrics.add_metric(name="SafetyNetUrlsRefused", unit=MetricUnit.Count, value=skipped)
        logger.warning("safety net skipped URLs the source policy refuses", skipped=skipped)
    if parsed.outcome is Outcome.SUCCESS and not kept:
        parsed = parsed.model_copy(
            update={
                "outcome": Outcome.UNRECOGNISED,
                "files": (),
                "reason": "result names no file URL the source policy allows; raw body archived for replay",
            }
        )
    if parsed.outcome is Outcome.UNRECOGNISED:
        metrics.add_metric(name="CallbacksUnrecognised", unit=MetricUnit.Count, value=1)
        logger.error("result not recognised", family=parsed.family, reason=parsed.reason)
    elif any(f.found_by == "net" for f in kept):
        logger.warning("files found by the safety net", family=parsed.family, files=len(kept))
    return parsed.model_copy(update={"files": kept})


def _short(parsed: ParsedCallback) -> ParsedCallback:
    """Drop the files whose URL is longer than MAX_URL_CHARS (as POST /copies refuses them): no file
    item could hold one, and one such URL must not keep the task's other files from being recorded.
    The task's reason says how many were dropped (a success left with none: `_netted`)."""
    short = tuple(f for f in parsed.files if len(f.url) <= MAX_URL_CHARS)
    if too_long := len(parsed.files) - len(short):
        metrics.add_metric(name="ResultUrlsTooLong", unit=MetricUnit.Count, value=too_long)
        logger.warning("result URLs too long: not archived", too_long=too_long, limit=MAX_URL_CHARS)
        reason = f"{too_long} result URLs longer than {MAX_URL_CHARS} characters were not archived"
        parsed = parsed.model_copy(update={"files": short, "reason": parsed.reason or reason})
    return parsed


def accept(services: Services, parsed: ParsedCallback, deadline: float | None = None) -> ParsedCallback:
    """Record what kie.ai says of a task and, when it succeeded, plan and dispatch its copies.

    At most MAX_URLS_PER_REQUEST distinct files of one delivery are planned (`capped`); the task
    records how many more there were (never one item per excess URL), and its status says so.
    Returns what was recorded.
    """
    parsed = _netted(services, _short(parsed))
    now = now_iso()
    planned, not_planned = capped(parsed.files)
    if not_planned:
        logger.warning("files past the cap not planned", not_planned=not_planned, cap=MAX_URLS_PER_REQUEST)
    services.ledger.save_task(
        TaskItem(
            task_id=parsed.task_id,
            family=parsed.family,
            outcome=parsed.outcome,
            reason=parsed.reason,
            file_count=len(planned),
            files_not_planned=not_planned,
            model=parsed.model,
            created_at=now,
            updated_at=now,
        )
    )
    if parsed.outcome is Outcome.SUCCESS:
        dispatch(services, plan_files(services, parsed.task_id, parsed.family, planned), deadline)
    return parsed


def dispatch(services: Services, jobs: Sequence[CopyJob], deadline: float | None = None) -> None:
    """Queue mode: one SQS message per job. Inline mode: copy each now, in this invocation."""
    if not jobs:
        return
    if services.queue is not None:
        services.queue.send(jobs)
        logger.info("copy jobs queued", jobs=len(jobs))
        return
    for job in jobs:
        try:
            copy_file(services, job, deadline=deadline)
        except Kie2S3Error as exc:
            # Inline mode has no queue to retry through: the ledger keeps the file pending with the reason.
            logger.warning("inline copy left pending", index=job.index, reason=exc.reason)
