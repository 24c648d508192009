"""What the use cases need of each adapter: small Protocols the adapters and the tests' fakes satisfy,
with the service limits and values that come with them. logic/ and transfer/ use them; adapters/
implement them; this module imports nothing of either (a test keeps it so)."""

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self

from aws_lambda_powertools.utilities.typing import LambdaContext

from kie2s3.models import (
    EVENT_SOURCE,
    BusEvent,
    CopyJob,
    CopyResult,
    FileItem,
    FileState,
    ForwardJob,
    Guarded,
    SourceVersion,
    TaskItem,
    TransferResult,
)

# ---------------------------------------------------------------- the ledger

# What `Ledger.open_items` lists: unfinished files (pending, copying), or tasks still running at kie.ai.
OPEN_FILE = "FILE"
OPEN_TASK = "TASK"


def now_iso() -> str:
    """The current time as the ledger stores it (UTC, ISO 8601)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class FileChange:
    """One write to a file item, as the ledger's stream tells it: the file's state before it (None:
    the item did not exist) and the item after it (None: removed)."""

    task_id: str
    before: FileState | None
    after: FileItem | None


@dataclass(frozen=True)
class TaskChange:
    """One write to a task item, as the ledger's stream tells it: its attributes before and after
    (None: the item did not exist, or was removed)."""

    task_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class Ledger(Protocol):
    """The tasks ledger (adapters/ledger.py): what kie2s3 knows of each task and file.

    A file `copied` is never moved back by mark_pending, mark_failed or touch_file; every update
    of a file whose item is missing (unknown, or its task taken down) changes nothing and says so.
    """

    def get(self, task_id: str) -> tuple[TaskItem, list[FileItem]] | None: ...

    def file(self, task_id: str, index: int) -> FileItem | None: ...

    def save_task(self, task: TaskItem) -> None: ...

    def add_files(self, items: Sequence[FileItem]) -> int: ...

    def mark_pending(
        self, task_id: str, index: int, *, error: str | None = None, source_url: str | None = None
    ) -> bool: ...

    def mark_failed(self, task_id: str, index: int, error: str) -> bool: ...

    def mark_copied(self, task_id: str, index: int, result: CopyResult) -> bool: ...

    def touch_file(self, task_id: str, index: int, state: FileState) -> bool: ...

    def open_items(self, kind: str, updated_before: str, limit: int = 100) -> list[dict[str, Any]]: ...

    def touch_task(self, task_id: str) -> None: ...

    def close_task(self, task_id: str, reason: str) -> None: ...

    def taken_down(self, task_id: str) -> bool: ...

    def mark_taken_down(self, task_id: str, keys: Sequence[str]) -> bool: ...

    def delete_files(self, task_id: str) -> int: ...


# ---------------------------------------------------------------- the archive bucket

# S3 multipart limits: parts of 5 MiB to 5 GiB (the last may be smaller), at most 10,000 of them.
# docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html
MIN_PART_BYTES = 5 * 1024**2
MAX_PART_BYTES = 5 * 1024**3
MAX_PARTS = 10_000


def part_size_for(content_length: int | None, preferred: int, max_file_bytes: int) -> int:
    """A part size ≥ preferred that fits the file (or MAX_FILE_BYTES when unknown) into ≤ 10,000 parts."""
    size = content_length if content_length is not None else max_file_bytes
    needed = -(-size // MAX_PARTS)
    mib = 1024**2
    return min(MAX_PART_BYTES, max(preferred, MIN_PART_BYTES, -(-needed // mib) * mib))


class Upload(Protocol):
    """One multipart upload (adapters/s3_store.py's MultipartUpload): parts may be sent from several
    threads; leaving the `with` block without `complete()` aborts it."""

    @property
    def parts_done(self) -> int: ...

    def create(self) -> str: ...

    def upload_part(self, number: int, data: memoryview) -> None: ...

    def complete(self) -> None: ...

    def abort(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class ObjectStore(Protocol):
    """The archive bucket (adapters/s3_store.py): every write of a file is create-only."""

    @property
    def bucket(self) -> str: ...

    def put_new(
        self,
        key: str,
        body: bytes,
        *,
        content_type: str,
        checksum_sha256: bytes,
        metadata: dict[str, str],
        tags: dict[str, str] | None = None,
        archive: bool = True,
    ) -> None: ...

    def multipart_upload(self, key: str, *, content_type: str, metadata: dict[str, str]) -> Upload: ...

    def set_tags(self, key: str, tags: dict[str, str]) -> None: ...

    def describe(self, key: str) -> dict[str, str] | None: ...

    def sha256_of(self, key: str) -> str: ...

    def put_raw(self, key: str, body: bytes, *, family_hint: str | None = None) -> None: ...

    def raw_keys(self, prefix: str, limit: int = 100) -> list[str]: ...

    def get_raw(self, key: str) -> tuple[bytes, str | None]: ...

    def presigned_get(self, key: str, ttl_seconds: int) -> str: ...

    def abort_stale_uploads(
        self, prefix: str, initiated_before: datetime, limit: int = 1000
    ) -> list[str]: ...

    def remove(
        self,
        prefix: str,
        *,
        exact: bool,
        bypass_governance: bool = False,
        only: Callable[[str], bool] | None = None,
    ) -> dict[str, int]: ...


class JobQueue(Protocol):
    """The queue of copy jobs (adapters/queue.py): at-least-once delivery."""

    def send(self, jobs: Sequence[CopyJob]) -> None: ...


class KieApi(Protocol):
    """kie.ai's API (adapters/kie_client.py): fresh download links and task records."""

    @property
    def worst_case_seconds(self) -> float:
        """The longest one call may take (connect + read): what a deadline guarding a call keeps."""
        ...

    def download_url(self, url: str) -> str: ...

    def record_info(self, path: str, task_id: str) -> dict[str, Any]: ...


class SourceStream(Protocol):
    """An open download (adapters/http_source.py): declared size and type, the version later ranges
    are pinned to (None: the stream is the whole file), and sequential fills."""

    @property
    def total_size(self) -> int | None: ...

    @property
    def content_type(self) -> str | None: ...

    @property
    def version(self) -> SourceVersion | None: ...

    @property
    def ranged(self) -> bool: ...

    def fill(self, into: memoryview) -> int: ...


class Source(Protocol):
    """Where source files are downloaded from (adapters/http_source.py)."""

    def open(
        self, url: str, *, max_bytes: int, first_part: int | None
    ) -> AbstractContextManager[SourceStream]: ...

    def fetch_range(self, url: str, start: int, into: memoryview, version: SourceVersion) -> None: ...


class Guard(Protocol):
    """The idempotency guard (adapters/idempotency.py): one copy of a file at a time, a finished
    one answered from its record (kept 14 days), a failed one leaving no record; a copy of a task
    taken down is never opened (`taken_down`: its opening write is fenced on the task)."""

    def run(self, job: CopyJob, transfer: Callable[[], TransferResult]) -> Guarded: ...

    def copying(self, task_id: str, indexes: Iterable[int]) -> set[int]: ...

    def in_flight(self, task_id: str, indexes: Iterable[int]) -> int | None: ...

    def forget(self, job: CopyJob) -> None: ...

    def register_lambda_context(self, context: LambdaContext) -> None: ...


class ForwardJobs(Protocol):
    """The forward queue (adapters/queue.py): forward jobs, each delivered again when it says."""

    def send(self, job: ForwardJob) -> None: ...

    def is_source_of(self, event_source_arn: str) -> bool: ...

    def deliver_again_in(self, receipt_handle: str, seconds: int) -> None: ...


class Webhook(Protocol):
    """POSTs to the user's own handler (adapters/webhook.py); the HTTP status it answered."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_seconds: float) -> int: ...


# ---------------------------------------------------------------- the event bus

# PutEvents takes at most 10 entries in one request, and at most 256 KiB of them: an entry counts
# its Source, DetailType and Detail in UTF-8 bytes (and 14 for a Time, each Resources ARN's bytes,
# neither of which kie2s3 sends). docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html
MAX_ENTRIES_PER_PUT = 10
MAX_PUT_BYTES = 256 * 1024
# The error code given to an event larger than any request may carry (it is never sent).
TOO_LARGE = "EntryTooLarge"


def entry_size(event: BusEvent) -> int:
    """The bytes an event counts towards PutEvents' 256 KiB."""
    return len(EVENT_SOURCE.encode()) + len(event.detail_type.encode()) + len(event.detail.encode())


def grouped[T](items: Iterable[T], size_of: Callable[[T], int], count: int, limit: int) -> Iterator[list[T]]:
    """The items in their order, grouped into requests of at most `count` items and `limit` bytes
    (`size_of` each; an item larger than `limit` comes alone)."""
    batch: list[T] = []
    size = 0
    for item in items:
        length = size_of(item)
        if batch and (len(batch) == count or size + length > limit):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += length
    if batch:
        yield batch


def batches(events: Sequence[BusEvent]) -> Iterator[list[BusEvent]]:
    """The events in their order, grouped into requests PutEvents accepts (an event too large for
    any request comes alone)."""
    return grouped(events, entry_size, MAX_ENTRIES_PER_PUT, MAX_PUT_BYTES)


class EventPublisher(Protocol):
    """The EventBridge bus (adapters/event_bus.py): per event of one request, None when taken, else
    its error code; RetryableError when the request itself failed."""

    def put(self, events: Sequence[BusEvent]) -> list[str | None]: ...


# ---------------------------------------------------------------- secrets


@dataclass(frozen=True)
class SecretVersions:
    """A secret's AWSCURRENT value and, once it has been rotated, its AWSPREVIOUS one
    (adapters/secrets.py reads them).

    `rotated_at` is when the current version was created (its CreatedDate, Unix seconds): the start
    of the rotation window. `fetched_at` is when these were read from Secrets Manager.
    """

    current: str
    previous: str | None
    rotated_at: float
    fetched_at: float
