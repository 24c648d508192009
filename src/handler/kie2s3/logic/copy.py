"""Copy one file: fresh link from kie.ai, streamed into a create-only S3 object, verified, recorded."""

import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

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

from kie2s3.adapters.s3_store import part_size_for
from kie2s3.errors import CopyInProgressError, Kie2S3Error, ObjectExistsError, PermanentError, RetryableError
from kie2s3.logic.pipeline import Pipeline, PipelineShape
from kie2s3.logic.ports import SourceStream
from kie2s3.logic.services import Services
from kie2s3.media import SNIFF_BYTES, sniff_content_type
from kie2s3.models import CopyJob, CopyResult, TransferResult
from kie2s3.observability import logger, metrics, tracer
from kie2s3.sources import canonical_url

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


class _Links:
    """The file's download link: resolved through kie.ai's download-url, again when it expires."""

    def __init__(self, services: Services, job: CopyJob) -> None:
        self._services = services
        self._job = job
        self._link: str | None = None
        self._lock = threading.Lock()

    def get(self, refresh: bool = False) -> str:
        """The current link (policy-checked), or a fresh one when `refresh` (a 20-minute link expired)."""
        with self._lock:
            if self._link is None or refresh:
                policy = self._services.policy
                self._link = policy.check(self._services.kie.download_url(policy.check(self._job.source)))
                logger.info("download link resolved", index=self._job.index, link=canonical_url(self._link))
            return self._link


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
            self._services.store.set_tags(result.key, _tags(self._job, result.sha256))
        self._services.ledger.mark_copied(self._job.task_id, self._job.index, result)


# S3 holds at most 2 KB of user metadata per object: the longest values are cut to keep within it.
_MAX_MODEL_METADATA_CHARS = 128
_MAX_SOURCE_METADATA_CHARS = 1024


def _model(job: CopyJob) -> str:
    """Market's model name, else the family (jobs queued before the model was sent have none)."""
    return job.model or job.family


def _metadata(job: CopyJob) -> dict[str, str]:
    """The `x-amz-meta-*` values users search objects by (the store makes them ASCII)."""
    return {
        "task-id": job.task_id,
        "family": job.family,
        "model": _model(job)[:_MAX_MODEL_METADATA_CHARS],
        "file-index": str(job.index),
        "source": canonical_url(job.source)[:_MAX_SOURCE_METADATA_CHARS],
    }


def _tags(job: CopyJob, sha256: str) -> dict[str, str]:
    """Every tag of an archived object, for lifecycle rules and Storage Lens. A tag write replaces
    the whole set, so every write sends all of them."""
    return {"sha256": sha256, "kie2s3:family": job.family, "kie2s3:model": _model(job)}


def _transfer(services: Services, job: CopyJob, last_writes: "_LastWrites") -> TransferResult:
    settings = services.settings
    store = services.store
    links = _Links(services, job)
    preferred = services.shape.part_bytes
    # The opening request asks for a first part big enough for the largest file allowed; once the
    # source has declared the size, the parts are sized for it (S3: 5 MiB-5 GiB, at most 10,000).
    opening = part_size_for(None, preferred, settings.max_file_bytes)
    with services.source.open(links.get(), max_bytes=settings.max_file_bytes, first_part=opening) as stream:
        total = stream.total_size
        part_bytes = part_size_for(total, preferred, settings.max_file_bytes)
        # A file declared to fit in one part gets a buffer of its size (none for an empty one).
        first = bytearray(part_bytes if total is None or total > part_bytes else total)
        head = stream.fill(memoryview(first)[:SNIFF_BYTES])
        content_type = sniff_content_type(bytes(first[:head]), stream.content_type)
        # A large file from a source that answers ranges of a pinned version goes straight into the
        # parallel pipeline, the rest of its first part still arriving on the opening connection.
        pinned = stream.version if stream.version is not None and stream.version.total > part_bytes else None
        size = head
        if pinned is None:
            if head == SNIFF_BYTES:
                size += stream.fill(memoryview(first)[head:])
            if stream.ranged and size != total:
                raise RetryableError(f"first range ended after {size} of {total} bytes")
            if (total is not None and total <= part_bytes) or size < part_bytes:
                # One part or less (an empty source included): a single create-only PUT.
                return last_writes.start(
                    _put_whole(services, job, bytes(first[:size]), content_type), tag=False
                )
        label: dict[str, Any] = {"index": job.index, "total": total}
        with store.multipart_upload(job.key, content_type=content_type, metadata=_metadata(job)) as upload:
            shape = services.shape
            pipeline = Pipeline(
                PipelineShape(part_bytes, shape.buffers, shape.connections, shape.uploads),
                upload,
                first=first,
                label=label,
            )
            del first
            if pinned is not None:
                copied, digest = pipeline.run_ranges(
                    services.source, links.get, pinned, _rest_of_first_part(stream, head)
                )
            else:
                copied, digest = pipeline.run_stream(stream, size)
            result = TransferResult(
                bucket=store.bucket, key=job.key, bytes=copied, sha256=digest, content_type=content_type
            )
            try:
                upload.complete()
            except ObjectExistsError:
                return last_writes.start(_already_archived(services, job, result), tag=False)
    return last_writes.start(result, tag=True)


def _rest_of_first_part(stream: SourceStream, head: int) -> Callable[[memoryview], None]:
    """Fills a first part whose `head` bytes are read with the rest of the opening range."""

    def fill(part: memoryview) -> None:
        got = head + stream.fill(part[head:])
        if got != len(part):
            raise RetryableError(f"first range ended after {got} of {len(part)} bytes")

    return fill


def _put_whole(services: Services, job: CopyJob, body: bytes, content_type: str) -> TransferResult:
    """A file that fits in one part: one create-only PUT, SHA-256 in metadata and tag."""
    store = services.store
    whole = hashlib.sha256(body)
    digest = whole.hexdigest()
    result = TransferResult(
        bucket=store.bucket,
        key=job.key,
        bytes=len(body),
        sha256=digest,
        content_type=content_type,
        tagged=True,
    )
    try:
        store.put_new(
            job.key,
            body,
            content_type=content_type,
            checksum_sha256=whole.digest(),
            metadata={**_metadata(job), "sha256": digest},
            tags=_tags(job, digest),
        )
    except ObjectExistsError:
        return _already_archived(services, job, result)
    return result


def _already_archived(services: Services, job: CopyJob, ours: TransferResult) -> TransferResult:
    """The key is taken (an earlier delivery won the race): accept it only if it holds the same bytes."""
    store = services.store
    found = store.describe(ours.key) or {}
    theirs = found.get("sha256")
    if theirs is None:
        # Completed but killed before tagging: hash what is stored rather than trust it.
        theirs = store.sha256_of(ours.key)
        if theirs == ours.sha256:
            store.set_tags(ours.key, _tags(job, theirs))
    if theirs != ours.sha256:
        raise PermanentError(f"{ours.key} already holds different bytes: not overwriting it")
    logger.info("file already archived", key=ours.key)
    return ours.model_copy(update={"content_type": found.get("content-type") or ours.content_type})
