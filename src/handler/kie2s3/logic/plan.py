"""Planning: the deterministic destination of each file, and dispatching copy jobs."""

from collections.abc import Sequence

from kie2s3.adapters.ledger import now_iso
from kie2s3.errors import Kie2S3Error
from kie2s3.logic.copy import copy_file
from kie2s3.logic.services import Services
from kie2s3.media import url_suffix
from kie2s3.models import CopyJob, FileItem, Outcome, ParsedCallback, SourceFile, TaskItem
from kie2s3.observability import logger
from kie2s3.sources import public_url


def object_key(prefix: str, task_id: str, index: int, url: str) -> str:
    """Where a file lands: `<prefix><taskId>/<index><suffix>`; the same file always gets the same key."""
    return f"{prefix}{task_id}/{index:02d}{url_suffix(url) or '.bin'}"


def raw_callback_key(prefix: str, task_id: str, received_ms: int, digest: str) -> str:
    """Where a callback's raw body is archived, beside the task's files."""
    return f"{prefix}{task_id}/callbacks/{received_ms}-{digest[:16]}.json"


def plan_files(services: Services, task_id: str, family: str, files: Sequence[SourceFile]) -> list[CopyJob]:
    """Record each file in the ledger (once) and return the jobs to send.

    De-duplication before enqueueing: only the delivery that creates a file's ledger item sends
    its job (a repeated or concurrent callback sends none; the reconciler re-sends jobs that were
    lost), and a file that `failed` earlier is given another job. A source the policy refuses is
    recorded `failed` with the reason and gets no job.
    """
    prefix = services.settings.object_prefix
    found = services.ledger.get(task_id)
    known = {f.index: f for f in found[1]} if found else {}
    jobs: list[CopyJob] = []
    for index, file in enumerate(files):
        existing = known.get(index)
        if existing is not None and existing.state != "failed":
            continue
        item = FileItem(
            task_id=task_id,
            index=index,
            source=public_url(file.url),
            kind=file.kind,
            key=object_key(prefix, task_id, index, file.url),
            bucket=services.store.bucket,
            updated_at=now_iso(),
        )
        try:
            services.policy.check(file.url)
        except Kie2S3Error as exc:
            item = item.model_copy(update={"state": "failed", "error": exc.reason})
            logger.warning("source refused", index=index, source=item.source, reason=exc.reason)
        if existing is None and not services.ledger.add_file(item):
            continue  # a concurrent delivery recorded it first: its job is on the way
        if item.state == "failed":
            continue
        if existing is not None:
            services.ledger.update_file(task_id, index, unless_copied=True, state="pending", error=None)
        jobs.append(
            CopyJob(
                task_id=task_id, index=index, source=file.url, kind=file.kind, family=family, key=item.key
            )
        )
    return jobs


def accept(services: Services, parsed: ParsedCallback, deadline: float | None = None) -> None:
    """Record what kie.ai says of a task and, when it succeeded, plan and dispatch its copies."""
    now = now_iso()
    services.ledger.record_task(
        TaskItem(
            task_id=parsed.task_id,
            family=parsed.family,
            outcome=parsed.outcome,
            reason=parsed.reason,
            file_count=len(parsed.files),
            created_at=now,
            updated_at=now,
        )
    )
    if parsed.outcome is Outcome.SUCCESS:
        dispatch(services, plan_files(services, parsed.task_id, parsed.family, parsed.files), deadline)


def dispatch(services: Services, jobs: Sequence[CopyJob], deadline: float | None = None) -> None:
    """Queue mode: one SQS message per job. Inline mode: copy each now, in this invocation."""
    if not jobs:
        return
    if services.settings.copy_mode == "queue" and services.queue is not None:
        services.queue.send(jobs)
        logger.info("copy jobs queued", jobs=len(jobs))
        return
    for job in jobs:
        try:
            copy_file(services, job, deadline=deadline)
        except Kie2S3Error as exc:
            # Inline mode has no queue to retry through: the ledger keeps the file pending with the reason.
            logger.warning("inline copy left pending", index=job.index, reason=exc.reason)
