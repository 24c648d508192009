"""The adapters and settings a use case needs, handed in by the handler (tests hand in their own)."""

from collections.abc import Callable
from dataclasses import dataclass

from kie2s3.adapters.event_bus import EventBus
from kie2s3.adapters.http_source import HttpSource
from kie2s3.adapters.idempotency import CopyGuard
from kie2s3.adapters.kie_client import KieClient
from kie2s3.adapters.ledger import Ledger
from kie2s3.adapters.queue import CopyQueue
from kie2s3.adapters.s3_store import S3Store
from kie2s3.adapters.secrets import SecretVersions
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
    bus: EventBus  # the ledger's events (the stream's function alone puts any)
    retry: RetryPolicy = RetryPolicy()
    shape: PipelineShape = DEFAULT_SHAPE
