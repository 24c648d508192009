"""The adapters and settings a use case needs, handed in by the handler (tests hand in their own)."""

import time
from collections.abc import Callable
from dataclasses import dataclass

from kie2s3.ports import (
    EventPublisher,
    ForwardJobs,
    Guard,
    JobQueue,
    KieApi,
    Ledger,
    ObjectStore,
    SecretVersions,
    Source,
    Webhook,
)
from kie2s3.retries import BULK_POLICY, FORWARD_RETRY, TRANSFER_RETRY, BulkPolicy, ForwardPolicy, RetryPolicy
from kie2s3.settings import Settings
from kie2s3.sources import SourcePolicy
from kie2s3.transfer.pipeline import PipelineShape

# Parts of 8 MiB (boto3's default) in at most 5 reusable buffers: 40 MiB whatever the file size, so a
# 1 GiB copy's worker stays under its 128 MiB target. Every part costs a ranged GET and an UploadPart,
# each a request's worth of CPU in the worker, and the S3 request is billed: larger parts do less work
# per byte than S3's 5 MiB minimum. Five connections beat a source that throttles each one; five
# UploadPart calls at once keep S3 fed when the source is fast (design.md, Limits: ~75 MB/s per
# Lambda). `make bench` measures both; the figures are in docs/benchmarks.md.
DEFAULT_SHAPE = PipelineShape(part_bytes=8 * 1024**2, buffers=5, connections=5, uploads=5)


@dataclass(frozen=True)
class Forwarding:
    """What forwarding accepted callbacks to FORWARD_URL needs; tests hand in their clock and policy."""

    queue: ForwardJobs
    webhook: Webhook
    policy: ForwardPolicy = FORWARD_RETRY
    clock: Callable[[], float] = time.time  # Unix seconds: signatures' timestamps and the waits


@dataclass(frozen=True)
class Services:
    """Everything the use cases touch, each adapter by the port it implements; built once per
    container (handlers/wiring.py), or from the in-memory fakes of tests/fakes.py."""

    settings: Settings
    ledger: Ledger
    store: ObjectStore
    queue: JobQueue | None  # the one sign of the copy mode: None in inline mode (COPY_MODE, read in wiring)
    kie: KieApi
    source: Source
    policy: SourcePolicy
    secret: Callable[[str], str]
    # The webhook HMAC key's or callback token's AWSCURRENT and AWSPREVIOUS (True: read them again).
    secret_versions: Callable[[str, bool], SecretVersions]
    guard: Guard
    bus: EventPublisher  # the ledger's events (the stream's function alone puts any)
    retry: RetryPolicy = TRANSFER_RETRY  # every layer's budget: kie2s3/retries.py
    bulk: BulkPolicy = BULK_POLICY
    shape: PipelineShape = DEFAULT_SHAPE
    forwarding: Forwarding | None = None  # None: forwarding off (FORWARD_URL empty)
