"""The adapters and settings a use case needs, handed in by the handler (tests hand in their own)."""

import time
from collections.abc import Callable
from dataclasses import dataclass

from kie2s3.adapters.http_source import HttpSource
from kie2s3.adapters.idempotency import CopyGuard
from kie2s3.adapters.kie_client import KieClient
from kie2s3.adapters.ledger import Ledger
from kie2s3.adapters.queue import CopyQueue, ForwardQueue
from kie2s3.adapters.s3_store import S3Store
from kie2s3.adapters.secrets import SecretVersions
from kie2s3.adapters.webhook import WebhookClient
from kie2s3.logic.pipeline import PipelineShape
from kie2s3.settings import Settings
from kie2s3.sources import SourcePolicy

# Parts of 5 MiB (S3's minimum) in at most 6 reusable buffers: 30 MiB whatever the file size, so a
# 1 GiB copy's worker stays under its 128 MiB target. Five connections beat a source that throttles
# each one; five UploadPart calls at once keep S3 fed when the source is fast (design.md, Limits:
# ~75 MB/s per Lambda). `make bench` measures both; the figures are in README's Benchmarks.
DEFAULT_SHAPE = PipelineShape(part_bytes=5 * 1024**2, buffers=6, connections=5, uploads=5)


@dataclass(frozen=True)
class RetryPolicy:
    """In-invocation retries of a transfer: exponential backoff with full jitter."""

    attempts: int = 4
    base_seconds: float = 0.5
    cap_seconds: float = 8.0
    # Time kept back for recording the outcome and answering SQS before the Lambda timeout.
    reserve_seconds: float = 20.0


@dataclass(frozen=True)
class ForwardPolicy:
    """When a forward job is delivered again: the next delivery comes after as long as the job is
    old (so the waits double), within these bounds; after `settle_seconds` it waits no more.

    Waiting for files: 5 s, 10 s, 20 s … 2 min, until the files are settled or `settle_seconds`
    (15 minutes, the issue's promise) have passed since the callback arrived. Backing off after a
    failed attempt: 30 s doubling to 1 h, until the queue's maxReceiveCount (16 to 23 hours; README,
    Forwarding), then the dead-letter queue.
    """

    settle_seconds: float = 15 * 60
    wait_min_seconds: int = 5
    wait_max_seconds: int = 120
    retry_min_seconds: int = 30
    retry_max_seconds: int = 3600
    # Connect and read, each: the user's handler answers kie.ai within 15 s (kie-api.md §2).
    timeout_seconds: float = 15.0


@dataclass(frozen=True)
class Forwarding:
    """What forwarding accepted callbacks to FORWARD_URL needs; tests hand in their clock and policy."""

    queue: ForwardQueue
    webhook: WebhookClient
    policy: ForwardPolicy = ForwardPolicy()
    clock: Callable[[], float] = time.time  # Unix seconds: signatures' timestamps and the waits


@dataclass(frozen=True)
class Services:
    """Everything the use cases touch; built once per container."""

    settings: Settings
    ledger: Ledger
    store: S3Store
    queue: CopyQueue | None  # the one sign of the copy mode: None in inline mode (COPY_MODE, read in wiring)
    kie: KieClient
    source: HttpSource
    policy: SourcePolicy
    secret: Callable[[str], str]
    # The webhook HMAC key's or callback token's AWSCURRENT and AWSPREVIOUS (True: read them again).
    secret_versions: Callable[[str, bool], SecretVersions]
    guard: CopyGuard
    retry: RetryPolicy = RetryPolicy()
    forwarding: Forwarding | None = None  # None: forwarding off (FORWARD_URL empty)
    shape: PipelineShape = DEFAULT_SHAPE
