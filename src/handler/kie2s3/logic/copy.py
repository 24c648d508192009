"""Copy one file exactly once: the transfer under the idempotency guard, then the ledger's `copied`."""

import time

from aws_lambda_powertools.metrics import MetricUnit
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
)
from tenacity.stop import stop_base

from kie2s3.errors import CopyInProgressError, Kie2S3Error, PermanentError, RetryableError
from kie2s3.logic.services import Services
from kie2s3.models import CopyJob, CopyResult, TransferResult
from kie2s3.observability import logger, metrics, tracer
from kie2s3.transfer import Transfer, object_tags


@tracer.capture_method(capture_response=False)
def copy_file(
    services: Services, job: CopyJob, *, deadline: float | None = None, last_delivery: bool = False
) -> CopyResult | None:
    """Copy one file and record the outcome in the ledger; the result, or None when nothing was copied.

    Delivery semantics: at most one copy of a (taskId, index) runs at a time and a finished one is
    answered from the idempotency record (14 days), so a file is downloaded once however often its
    job arrives. In order, each step after the one before (a single-part file: 6 round trips):
    1. under the guard (its in-progress record written first, its success after), the transfer,
       retried on passing faults with exponential backoff and full jitter while the invocation has
       time (`deadline`, a time.monotonic() value), its object stored only while its lock holds
       (`commit_reserve_seconds` before the deadline: else RetryableError, nothing stored);
    2. the object's tags when the transfer left them to write (a multipart upload), then the
       ledger's `copied` (written again for a duplicate: the delivery that stored it may have
       failed at it).
    A transfer that fails for good is recorded `failed` and returns None (never retried); one that
    still fails passingly raises RetryableError for SQS to deliver again, the file `pending` with
    the reason, or `failed` on the `last_delivery` before the DLQ. A failure in step 2 raises and
    records nothing: the file stays open, and a later delivery (or the reconciler's) makes step 2
    from the idempotency record without downloading again. A job another delivery is running
    raises CopyInProgressError, unless the ledger has the file `copied` already. A file the ledger
    no longer has is not recorded, and its idempotency record is removed. A job of a task taken
    down stops at step 1: the write that opens the copy is fenced on the task (no download, no
    object), and a takedown waits out the copies opened before it (their in-progress records).
    """
    started = time.monotonic()
    try:
        guarded = services.guard.run(job, lambda: _transfer_with_retries(services, job, deadline))
    except PermanentError as exc:
        _failed(services, job, exc.reason)
        return None
    except Kie2S3Error as exc:
        _not_copied(services, job, exc, last_delivery)
        raise
    if guarded.outcome == "taken_down":
        metrics.add_metric(name="CopiesOfTakenDownTasks", unit=MetricUnit.Count, value=1)
        logger.info("task taken down: nothing copied", index=job.index)
        return None
    if guarded.result is None:
        _busy(services, job)
        return None
    if guarded.outcome == "unrecorded":
        # Its in-progress record stays until it expires: meanwhile a delivery stops at `copied`.
        logger.warning("copy stored, but its idempotency record could not be completed", index=job.index)
    result = _record(services, job, guarded.result)
    if result is not None:
        _archived(job, result, time.monotonic() - started)
    return result


def _transfer_of(services: Services, commit_by: float | None = None) -> Transfer:
    """The transfer of a file with these services' kie.ai client, source, store and pipeline, storing
    its object no later than `commit_by` (time.monotonic())."""
    return Transfer(
        kie=services.kie,
        policy=services.policy,
        source=services.source,
        store=services.store,
        shape=services.shape,
        max_file_bytes=services.settings.max_file_bytes,
        commit_by=commit_by,
    )


def _transfer_with_retries(services: Services, job: CopyJob, deadline: float | None) -> TransferResult:
    """The transfer, again on passing faults (a fresh link each time) while the invocation has time;
    the budget of each layer is in kie2s3/retries.py."""
    policy = services.retry
    stop: stop_base = stop_after_attempt(policy.attempts)
    commit_by = None
    if deadline is not None:
        stop = stop | stop_before_delay(max(deadline - time.monotonic() - policy.reserve_seconds, 0.0))
        commit_by = deadline - policy.commit_reserve_seconds  # the lock expires at the deadline
    retrying = Retrying(
        retry=retry_if_exception_type(RetryableError),
        wait=policy.backoff(),
        stop=stop,
        reraise=True,
        before_sleep=_log_retry,
    )
    return retrying(_transfer_of(services, commit_by).run, job)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    logger.warning(
        "transfer retrying",
        attempt=state.attempt_number,
        reason=getattr(error, "reason", type(error).__name__),
        sleep_seconds=round(state.upcoming_sleep, 2),
    )


def _busy(services: Services, job: CopyJob) -> None:
    """Another delivery holds the file's lock: done if the ledger has the file `copied` (a lock can
    outlive its copy when the write of its record failed) or has no such file; else SQS delivers
    this job again later (CopyInProgressError), when the copy has finished or its lock expired."""
    found = services.ledger.file(job.task_id, job.index)
    if found is None or found.state == "copied":
        logger.info(
            "nothing to copy: the file is archived already (or unknown to the ledger)", index=job.index
        )
        return
    metrics.add_metric(name="CopyDuplicates", unit=MetricUnit.Count, value=1)
    logger.info("copy already under way elsewhere", index=job.index)
    raise CopyInProgressError("another delivery of this file is copying it now")


def _record(services: Services, job: CopyJob, result: TransferResult) -> CopyResult | None:
    """A stored copy's tags (unless the PUT carried them), then the ledger's `copied`; None when
    the ledger no longer has the file or the object has gone."""
    try:
        if not result.tagged:
            # A multipart upload's metadata is fixed before the digest is known: it goes in a tag.
            services.store.set_tags(job.key, object_tags(job, result.sha256))
        recorded = services.ledger.mark_copied(job.task_id, job.index, result)
    except PermanentError as exc:  # the object is gone (a takedown removed it): nothing to record
        _failed(services, job, exc.reason)
        return None
    except Kie2S3Error as exc:
        logger.warning(
            "copy stored but not recorded: a later delivery records it", index=job.index, reason=exc.reason
        )
        raise
    if not recorded:
        _not_in_ledger(services, job)
        return None
    return result


def _not_in_ledger(services: Services, job: CopyJob) -> None:
    """`copied` was refused: the ledger has no item for the file (its task taken down while it was
    copied, or a job for a file it never had). Nothing is recorded and the idempotency record goes
    too. The object stays: no function may delete archived objects (takedown runs with the
    operator's credentials, and `make takedown` run again removes what a copy stored after it)."""
    services.guard.forget(job)
    logger.warning(
        "file not in the ledger (its task taken down?): nothing recorded", index=job.index, key=job.key
    )


def _not_copied(services: Services, job: CopyJob, exc: Kie2S3Error, last_delivery: bool) -> None:
    """A passing failure: `pending` for the next delivery, or `failed` on the last one."""
    if last_delivery:
        _failed(services, job, f"gave up after the last delivery: {exc.reason}")
    else:
        services.ledger.mark_pending(job.task_id, job.index, error=exc.reason)
        metrics.add_metric(name="CopyRetries", unit=MetricUnit.Count, value=1)
        logger.warning("copy will be retried", index=job.index, reason=exc.reason, retryable=True)


def _failed(services: Services, job: CopyJob, reason: str) -> None:
    services.ledger.mark_failed(job.task_id, job.index, reason)
    metrics.add_metric(name="CopyFailures", unit=MetricUnit.Count, value=1)
    logger.error("copy failed", index=job.index, reason=reason)


def _archived(job: CopyJob, result: CopyResult, seconds: float) -> None:
    elapsed_ms = seconds * 1000
    metrics.add_metric(name="FilesCopied", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="BytesCopied", unit=MetricUnit.Bytes, value=result.bytes)
    metrics.add_metric(name="CopyDuration", unit=MetricUnit.Milliseconds, value=elapsed_ms)
    logger.info(
        "file archived",
        index=job.index,
        key=result.key,
        bytes=result.bytes,
        sha256=result.sha256,
        content_type=result.content_type,
        duration_ms=round(elapsed_ms),
    )
