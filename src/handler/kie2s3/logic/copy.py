"""Copy one file: fresh link from kie.ai, streamed into a create-only S3 object, verified, recorded."""

import time
from concurrent.futures import Future, ThreadPoolExecutor, wait

from aws_lambda_powertools.metrics import MetricUnit
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from kie2s3.errors import CopyInProgressError, Kie2S3Error, PermanentError, RetryableError
from kie2s3.logic.services import Services
from kie2s3.models import CopyJob, CopyResult, TransferResult
from kie2s3.observability import logger, metrics, tracer
from kie2s3.transfer import Transfer, object_tags

# A copy's ledger writes run here beside Powertools' writes of the idempotency record: the gate
# (`copying`) beside the in-progress record, the last writes beside the success. The copy waits for
# them before it returns (a Lambda is frozen between invocations).
_LEDGER_WRITES = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")


class _NothingToCopy(Exception):
    """The ledger's gate refused the job: the file is archived already (or unknown to the ledger)."""


@tracer.capture_method(capture_response=False)
def copy_file(
    services: Services, job: CopyJob, *, deadline: float | None = None, last_delivery: bool = False
) -> CopyResult | None:
    """Copy one file and record the outcome in the ledger.

    Delivery semantics: at most one copy of a (taskId, index) runs at a time and a finished one is
    answered from the idempotency record, so a file is downloaded once however often its job
    arrives. Passing faults are retried here with exponential backoff and full jitter while the
    invocation has time (`deadline`, a time.monotonic() value), then raised as RetryableError for
    SQS to deliver again; on the `last_delivery` before the DLQ the file is recorded `failed`.
    A permanent failure is recorded `failed` and returns None (never retried); so does a job
    whose file the ledger already has `copied` (or does not know), without any download.
    `copied` follows the object's `sha256` tag: when either write fails after the transfer, the
    next delivery makes both from the idempotency record, without downloading again.
    """
    started = time.monotonic()
    # The gate and the in-progress record are written at once; the transfer waits for both.
    gate = _LEDGER_WRITES.submit(services.ledger.mark_copying, job.task_id, job.index)
    last_writes = _LastWrites(services, job)
    try:
        guarded = services.guard.run(
            job, lambda: _transfer_with_retries(services, job, deadline, last_writes, gate)
        )
        if guarded.outcome == "busy":
            raise CopyInProgressError("another delivery of this file is copying it now")
        if guarded.result is None or guarded.outcome == "unrecorded":
            raise RetryableError("idempotency store unavailable")
        result = guarded.result
        if _refused(gate):  # answered from the idempotency record: the transfer never ran
            raise _NothingToCopy
    except _NothingToCopy:
        _nothing_to_copy(job)
        return None
    except CopyInProgressError as exc:
        if _refused(gate):  # archived, though its idempotency record was left in progress
            _nothing_to_copy(job)
            return None
        metrics.add_metric(name="CopyDuplicates", unit=MetricUnit.Count, value=1)
        logger.info("copy already under way elsewhere", index=job.index, reason=exc.reason)
        raise
    except PermanentError as exc:
        _failed(services, job, exc.reason)
        return None
    except Kie2S3Error as exc:
        recorded = last_writes.settle()
        if recorded is None:
            _not_copied(services, job, exc, last_delivery)
            raise
        # Archived, tagged and `copied` in the ledger: only the idempotency record's write failed
        # (until it expires, a delivery of this job stops at the ledger's `copied`).
        logger.warning("copy recorded without its idempotency record", index=job.index, reason=exc.reason)
        result = recorded
    finally:
        wait([gate])  # never left running past the invocation, whatever the outcome
    last_writes.finish(result)
    elapsed_ms = (time.monotonic() - started) * 1000
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
    return result


def _refused(gate: "Future[bool]") -> bool:
    """Whether the ledger's gate refused the job (waiting for it); False when its write failed."""
    return gate.exception() is None and not gate.result()


def _nothing_to_copy(job: CopyJob) -> None:
    logger.info("nothing to copy: the file is archived already (or unknown to the ledger)", index=job.index)


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


def _transfer_with_retries(
    services: Services, job: CopyJob, deadline: float | None, last_writes: "_LastWrites", gate: "Future[bool]"
) -> TransferResult:
    """Once the ledger's gate has let the job in, the transfer, retried on passing faults (fresh
    link each time) while time remains. A refusal raises _NothingToCopy, so Powertools removes the
    in-progress record again."""
    if not gate.result():  # a failed write raises here: a passing failure like any other
        raise _NothingToCopy
    budget = (deadline - time.monotonic() - services.retry.reserve_seconds) if deadline else None
    stop: stop_base = stop_after_attempt(services.retry.attempts)
    if budget is not None:
        stop = stop | stop_before_delay(max(budget, 0.0))
    retrying = Retrying(
        retry=retry_if_exception_type(RetryableError),
        wait=wait_random_exponential(multiplier=services.retry.base_seconds, max=services.retry.cap_seconds),
        stop=stop,
        reraise=True,
        before_sleep=_log_retry,
    )
    return retrying(_transfer, services, job, last_writes)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    logger.warning(
        "transfer retrying",
        attempt=state.attempt_number,
        reason=getattr(error, "reason", type(error).__name__),
        sleep_seconds=round(state.upcoming_sleep, 2),
    )


class _LastWrites:
    """A copy's last writes: the `sha256` tag when the object still needs it, then the ledger's `copied`.

    The transfer starts them on another thread as it returns, so they overlap Powertools' write of the
    idempotency record. A result answered from that record gets both again, in case the delivery
    that stored it failed at them (the tag is idempotent, and a single PUT carries it already).
    """

    def __init__(self, services: Services, job: CopyJob) -> None:
        self._services = services
        self._job = job
        self._writes: Future[None] | None = None
        self._result: TransferResult | None = None

    def start(self, result: TransferResult, *, tag: bool) -> TransferResult:
        self._result = result
        self._writes = _LEDGER_WRITES.submit(self._write, result, tag)
        return result

    def settle(self) -> TransferResult | None:
        """Wait for the writes, if started; the result they recorded, or None (not started, or failed)."""
        if self._writes is None or self._writes.exception() is not None:
            return None
        return self._result

    def finish(self, result: CopyResult) -> None:
        """Wait for the writes (raising their error), or make them now for a result from the record."""
        if self._writes is None:
            self._write(result, tag=True)
        else:
            self._writes.result()

    def _write(self, result: CopyResult, tag: bool) -> None:
        if tag:
            # A multipart upload's metadata is fixed before the digest is known: it goes in a tag.
            self._services.store.set_tags(result.key, object_tags(self._job, result.sha256))
        self._services.ledger.mark_copied(self._job.task_id, self._job.index, result)


def _transfer_of(services: Services) -> Transfer:
    """The transfer of a file with these services' kie.ai client, source, store and pipeline."""
    return Transfer(
        kie=services.kie,
        policy=services.policy,
        source=services.source,
        store=services.store,
        shape=services.shape,
        max_file_bytes=services.settings.max_file_bytes,
    )


def _transfer(services: Services, job: CopyJob, last_writes: "_LastWrites") -> TransferResult:
    result = _transfer_of(services).run(job)
    return last_writes.start(result, tag=not result.tagged)
