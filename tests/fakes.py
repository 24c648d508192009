"""In-memory fakes of the logic's ports (kie2s3.ports), for unit tests of the use cases.

Each fake keeps the conditions of the adapter it stands for (a `copied` file never downgraded, an
update of a missing item refused, create-only object writes, ranges pinned to a version), logs
every request the adapter would send over the network in a shared `Trips`, and fails on demand
(`fail(operation, times)`). The guard is the real CopyGuard over an in-memory Powertools
persistence layer, so Powertools' own idempotency logic runs. `make_fakes()` wires them all into
the Services a use case takes.
"""

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import urlsplit

from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import STATUS_CONSTANTS, DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from kie2s3 import ports
from kie2s3.adapters.idempotency import CopyGuard, CopyRecords
from kie2s3.adapters.ledger import MAX_FILES_PER_TRANSACTION, TAKEN_DOWN
from kie2s3.adapters.s3_store import RAW_HINT, ascii_metadata, safe_tags
from kie2s3.errors import (
    LinkExpiredError,
    NotFoundError,
    ObjectExistsError,
    PermanentError,
    RetryableError,
    SourceChangedError,
    SourceRefusedError,
    TakenDownError,
)
from kie2s3.logic.services import Services
from kie2s3.models import BusEvent, CopyJob, CopyResult, FileItem, FileState, Outcome, SourceVersion, TaskItem
from kie2s3.ports import OPEN_FILE, OPEN_TASK, SecretVersions, now_iso
from kie2s3.retries import KIE_TIMEOUTS, RetryPolicy
from kie2s3.settings import Settings
from kie2s3.sources import SourcePolicy, canonical_url

# The in-invocation retry policy's attempts, without its waits (tests count attempts, not seconds).
FAST_RETRY = RetryPolicy(attempts=RetryPolicy().attempts, base_seconds=0.0, cap_seconds=0.0)
# Hosts the fake kie.ai's files and links live on (allowed by the fakes' source policy).
FILE_HOST = "tempfile.aiquickdraw.com"
LINK_HOST = "cdn.aiquickdraw.com"
BUCKET = "archive-bucket"


class Trips:
    """Every request the fakes stand for, in order: ("ledger", "UpdateItem"), ("source", "GET"), ..."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def add(self, component: str, operation: str) -> None:
        with self._lock:
            self.log.append((component, operation))

    def of(self, component: str) -> list[str]:
        """The operations one component sent, in order."""
        return [op for c, op in self.log if c == component]

    def clear(self) -> None:
        with self._lock:
            self.log.clear()


class _Faults:
    """Failures on demand: the next `times` calls of an operation raise `error`."""

    component = "fake"

    def __init__(self, trips: Trips | None) -> None:
        self.trips = trips or Trips()
        self._faults: dict[str, list[Exception]] = {}
        self._faults_lock = threading.Lock()

    def fail(self, operation: str, times: int = 1, error: Exception | None = None) -> None:
        """Make the next `times` calls of `operation` (a method name) raise `error` (RetryableError)."""
        failure = error or RetryableError(f"{self.component} {operation} failed (injected)")
        with self._faults_lock:
            self._faults.setdefault(operation, []).extend([failure] * times)

    def _request(self, operation: str, wire_name: str | None = None) -> None:
        """Log the request, then raise the failure injected for it, if any."""
        self.trips.add(self.component, wire_name or operation)
        with self._faults_lock:
            pending = self._faults.get(operation)
            failure = pending.pop(0) if pending else None
        if failure is not None:
            raise failure


def _client_error(operation: str, code: str = "InternalServerError") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "injected"}}, operation)


# -- ledger -------------------------------------------------------------------------------------

_OPEN_FILE_STATES = ("pending", "copying")


class FakeLedger(_Faults):
    """The tasks ledger in memory, with adapters/ledger.py's conditions."""

    component = "ledger"

    def __init__(self, trips: Trips | None = None) -> None:
        super().__init__(trips)
        self.tasks: dict[str, TaskItem] = {}
        self.files: dict[tuple[str, int], FileItem] = {}
        self.sources: dict[tuple[str, str], int] = {}  # (task id, canonical source) -> index
        self.open_tasks: set[str] = set()
        self._lock = threading.Lock()

    def get(self, task_id: str) -> tuple[TaskItem, list[FileItem]] | None:
        self._request("get", "Query")
        task = self.tasks.get(task_id)
        if task is None:
            return None
        files = sorted((f for (t, _), f in self.files.items() if t == task_id), key=lambda f: f.index)
        return task, files

    def file(self, task_id: str, index: int) -> FileItem | None:
        self._request("file", "GetItem")
        return self.files.get((task_id, index))

    def save_task(self, task: TaskItem) -> None:
        self._request("save_task", "UpdateItem")
        with self._lock:
            old = self.tasks.get(task.task_id)
            if old is not None and (
                old.taken_down_at
                or (task.outcome is not Outcome.SUCCESS and old.outcome is Outcome.SUCCESS)
                or (old.outcome.final and not task.outcome.final)
            ):
                return  # the adapter's condition fails, silently
            update: dict[str, Any] = {
                "family": task.family,
                "outcome": task.outcome,
                "reason": task.reason,
                "file_count": task.file_count,
                "updated_at": task.updated_at,
            }
            if task.files_not_planned:
                update["files_not_planned"] = task.files_not_planned
            if old is None:
                self.tasks[task.task_id] = task.model_copy(update=update)
            else:
                update["model"] = old.model or task.model
                self.tasks[task.task_id] = old.model_copy(update=update)
            if task.outcome in (Outcome.NOT_FINAL, Outcome.UNRECOGNISED):
                self.open_tasks.add(task.task_id)
            else:
                self.open_tasks.discard(task.task_id)

    def add_files(self, items: Sequence[FileItem]) -> int:
        if len(items) > 50:
            raise ValueError("at most 50 files are created at once")
        for start in range(0, len(items), MAX_FILES_PER_TRANSACTION):  # one transaction each
            self._request("add_files", "TransactWriteItems")
            chunk = items[start : start + MAX_FILES_PER_TRANSACTION]
            with self._lock:
                if self.is_taken_down(chunk[0].task_id):
                    return start  # the transaction's check of the task's fence fails
                for item in chunk:
                    if (item.task_id, item.index) in self.files or (
                        item.task_id,
                        item.source,
                    ) in self.sources:
                        return start
                for item in chunk:
                    self.files[(item.task_id, item.index)] = item
                    self.sources[(item.task_id, item.source)] = item.index
        return len(items)

    def mark_pending(
        self, task_id: str, index: int, *, error: str | None = None, source_url: str | None = None
    ) -> bool:
        fields: dict[str, Any] = {"state": "pending", "error": error}
        if source_url is not None:
            fields["source_url"] = source_url
        return self._update(task_id, index, fields)

    def mark_failed(self, task_id: str, index: int, error: str) -> bool:
        return self._update(task_id, index, {"state": "failed", "error": error})

    def touch_file(self, task_id: str, index: int, state: FileState) -> bool:
        return self._update(task_id, index, {"state": state})

    def mark_copied(self, task_id: str, index: int, result: CopyResult) -> bool:
        fields = {
            "state": "copied",
            "error": None,
            **CopyResult.model_validate(result.model_dump()).model_dump(),
        }
        return self._update(task_id, index, fields, unless_copied=False)

    def _update(
        self, task_id: str, index: int, fields: dict[str, Any], *, unless_copied: bool = True
    ) -> bool:
        self._request("update_file", "UpdateItem")
        with self._lock:
            item = self.files.get((task_id, index))
            if item is None or (unless_copied and item.state == "copied"):
                return False
            self.files[(task_id, index)] = item.model_copy(update={**fields, "updated_at": now_iso()})
            return True

    def open_items(self, kind: str, updated_before: str, limit: int = 100) -> list[dict[str, Any]]:
        self._request("open_items", "Query")
        if kind == OPEN_FILE:
            found: list[dict[str, Any]] = [
                {**f.model_dump(exclude_none=True), "open": OPEN_FILE}
                for f in self.files.values()
                if f.state in _OPEN_FILE_STATES and f.updated_at < updated_before
            ]
        elif kind == OPEN_TASK:
            found = [
                {**t.model_dump(mode="json", exclude_none=True), "open": OPEN_TASK}
                for t in self.tasks.values()
                if t.task_id in self.open_tasks and t.updated_at < updated_before
            ]
        else:
            found = []
        return sorted(found, key=lambda i: str(i["updated_at"]))[:limit]

    def touch_task(self, task_id: str) -> None:
        self._request("touch_task", "UpdateItem")
        if (task := self.tasks.get(task_id)) is not None:
            self.tasks[task_id] = task.model_copy(update={"updated_at": now_iso()})

    def close_task(self, task_id: str, reason: str) -> None:
        self._request("close_task", "UpdateItem")
        task = self.tasks.get(task_id)
        if task is None or task.taken_down_at:
            return  # the adapter's condition fails, silently
        self.tasks[task_id] = task.model_copy(update={"reason": reason, "updated_at": now_iso()})
        self.open_tasks.discard(task_id)

    def taken_down(self, task_id: str) -> bool:
        self._request("taken_down", "GetItem")
        task = self.tasks.get(task_id)
        return task is not None and task.taken_down_at is not None

    def mark_taken_down(self, task_id: str, keys: Sequence[str]) -> bool:
        self._request("mark_taken_down", "UpdateItem")
        now = now_iso()
        task = self.tasks.get(task_id) or TaskItem(  # not recorded yet: the fence alone
            task_id=task_id, family="unknown", outcome=Outcome.UNRECOGNISED, created_at=now, updated_at=now
        )
        self.tasks[task_id] = task.model_copy(
            update={
                "taken_down_at": now,
                "taken_down_keys": list(keys),
                "updated_at": now,
                "reason": TAKEN_DOWN,
            }
        )
        self.open_tasks.discard(task_id)
        return True

    def delete_files(self, task_id: str) -> int:
        self._request("delete_files", "BatchWriteItem")
        with self._lock:
            files = [k for k in self.files if k[0] == task_id]
            markers = [k for k in self.sources if k[0] == task_id]
            for key in files:
                del self.files[key]
            for marker in markers:
                del self.sources[marker]
        return len(files) + len(markers)

    # Test helpers (no request): put items in place as earlier deliveries would have left them.
    def is_taken_down(self, task_id: str) -> bool:
        """The task item's fence, as a condition in another request reads it (no request of its own)."""
        task = self.tasks.get(task_id)
        return task is not None and task.taken_down_at is not None

    def seed_task(self, task_id: str, family: str = "market", *, model: str | None = None) -> TaskItem:
        now = now_iso()
        task = TaskItem(
            task_id=task_id,
            family=family,
            outcome=Outcome.SUCCESS,
            model=model,
            created_at=now,
            updated_at=now,
        )
        self.tasks[task_id] = task
        return task

    def seed_file(self, item: FileItem) -> FileItem:
        self.files[(item.task_id, item.index)] = item
        self.sources[(item.task_id, item.source)] = item.index
        return item


# -- object store -------------------------------------------------------------------------------


@dataclasses.dataclass
class StoredObject:
    body: bytes
    content_type: str
    metadata: dict[str, str]
    tags: dict[str, str]
    storage_class: str = "STANDARD"


class FakeUpload:
    """A multipart upload into a FakeStore: created on first need, create-only on complete."""

    def __init__(self, store: "FakeStore", key: str, content_type: str, metadata: dict[str, str]) -> None:
        self._store = store
        self.key = key
        self._content_type = content_type
        self._metadata = metadata
        self.upload_id: str | None = None
        self.parts: dict[int, bytes] = {}
        self.buffers: set[int] = set()  # id() of each buffer a part was sent from
        self.completed = False
        self.aborted = False
        self.initiated = datetime.now(UTC)
        self._lock = threading.Lock()

    @property
    def parts_done(self) -> int:
        return len(self.parts)

    def create(self) -> str:
        with self._lock:
            if self.upload_id is None:
                if self.aborted:
                    raise PermanentError(f"the upload of {self.key} was aborted")
                self._store._request("create_multipart_upload", "CreateMultipartUpload")
                self.upload_id = f"upload-{id(self)}"
            return self.upload_id

    def upload_part(self, number: int, data: memoryview) -> None:
        self.create()
        self._store._request("upload_part", "UploadPart")
        with self._lock:
            self.parts[number] = bytes(data)
            self.buffers.add(id(data.obj))

    def complete(self) -> None:
        if self.upload_id is None:
            raise PermanentError("a multipart upload needs at least one part")
        self._store._request("complete", "CompleteMultipartUpload")
        body = b"".join(self.parts[n] for n in sorted(self.parts))
        self._store._create(
            self.key, StoredObject(body, self._content_type, ascii_metadata(self._metadata), {})
        )
        self.completed = True

    def abort(self) -> None:
        self.aborted = True
        if self.upload_id is not None:
            self._store._request("abort", "AbortMultipartUpload")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.completed:
            self.abort()


class FakeStore(_Faults):
    """The archive bucket in memory (unversioned): create-only writes, tags replaced whole."""

    component = "s3"

    def __init__(self, trips: Trips | None = None, bucket: str = BUCKET) -> None:
        super().__init__(trips)
        self._bucket = bucket
        self.objects: dict[str, StoredObject] = {}
        self.uploads: list[FakeUpload] = []
        self._lock = threading.Lock()

    @property
    def bucket(self) -> str:
        return self._bucket

    def _create(self, key: str, stored: StoredObject) -> None:
        with self._lock:
            if key in self.objects:
                raise ObjectExistsError("S3 write: the key already holds an object")
            self.objects[key] = stored

    def _existing(self, key: str, action: str) -> StoredObject:
        found = self.objects.get(key)
        if found is None:
            raise PermanentError(f"S3 {action} failed: NoSuchKey")
        return found

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
    ) -> None:
        self._request("put_new", "PutObject")
        if hashlib.sha256(body).digest() != checksum_sha256:
            raise PermanentError("S3 PutObject failed: BadDigest")
        self._create(key, StoredObject(body, content_type, ascii_metadata(metadata), safe_tags(tags or {})))

    def multipart_upload(self, key: str, *, content_type: str, metadata: dict[str, str]) -> FakeUpload:
        upload = FakeUpload(self, key, content_type, metadata)
        self.uploads.append(upload)
        return upload

    def set_tags(self, key: str, tags: dict[str, str]) -> None:
        self._request("set_tags", "PutObjectTagging")
        self._existing(key, "PutObjectTagging").tags = safe_tags(tags)

    def describe(self, key: str) -> dict[str, str] | None:
        self._request("describe", "HeadObject")
        found = self.objects.get(key)
        if found is None:
            return None
        self._request("describe", "GetObjectTagging")
        described = {k.lower(): v for k, v in found.metadata.items()}
        described.update(found.tags)
        described["content-type"] = found.content_type
        described["content-length"] = str(len(found.body))
        return described

    def sha256_of(self, key: str) -> str:
        self._request("sha256_of", "GetObject")
        return hashlib.sha256(self._existing(key, "GetObject").body).hexdigest()

    def put_raw(self, key: str, body: bytes, *, family_hint: str | None = None) -> None:
        self._request("put_raw", "PutObject")
        hint = {RAW_HINT: family_hint} if family_hint else {}
        with self._lock:  # create-only, and the same key means the same body: a repeat is a no-op
            self.objects.setdefault(key, StoredObject(body, "application/json", hint, {}))

    def raw_keys(self, prefix: str, limit: int = 100) -> list[str]:
        self._request("raw_keys", "ListObjectsV2")
        return sorted((k for k in self.objects if k.startswith(prefix)), reverse=True)[:limit]

    def get_raw(self, key: str) -> tuple[bytes, str | None]:
        self._request("get_raw", "GetObject")
        found = self._existing(key, "GetObject")
        return found.body, found.metadata.get(RAW_HINT)

    def presigned_get(self, key: str, ttl_seconds: int) -> str:
        return (
            f"https://{self._bucket}.s3.amazonaws.com/{key}?X-Amz-Expires={ttl_seconds}&X-Amz-Signature=fake"
        )

    def abort_stale_uploads(self, prefix: str, initiated_before: datetime, limit: int = 1000) -> list[str]:
        if not prefix:
            raise ValueError("an empty prefix would reach multipart uploads that are not kie2s3's")
        self._request("abort_stale_uploads", "ListMultipartUploads")
        aborted: list[str] = []
        for upload in self.uploads:
            stale = upload.initiated < initiated_before and upload.key.startswith(prefix)
            if (
                stale
                and upload.upload_id
                and not (upload.completed or upload.aborted)
                and len(aborted) < limit
            ):
                upload.abort()
                aborted.append(upload.key)
        return aborted

    def remove(
        self,
        prefix: str,
        *,
        exact: bool,
        bypass_governance: bool = False,
        only: Callable[[str], bool] | None = None,
    ) -> dict[str, int]:
        self._request("remove", "ListObjectVersions")
        keys = [
            k
            for k in self.objects
            if (k == prefix or (not exact and k.startswith(prefix))) and (only is None or only(k))
        ]
        for key in keys:
            self._request("remove", "DeleteObject")
            del self.objects[key]
        return dict.fromkeys(keys, 0)

    @property
    def incomplete_uploads(self) -> list[FakeUpload]:
        """Uploads created in S3 and neither completed nor aborted (what a killed copy leaves)."""
        return [u for u in self.uploads if u.upload_id and not (u.completed or u.aborted)]


# -- queue, kie.ai --------------------------------------------------------------------------------


class FakeQueue(_Faults):
    """The copy queue: what was sent, in order."""

    component = "sqs"

    def __init__(self, trips: Trips | None = None) -> None:
        super().__init__(trips)
        self.sent: list[CopyJob] = []

    def send(self, jobs: Sequence[CopyJob]) -> None:
        for start in range(0, len(jobs), 10):  # SendMessageBatch takes ten
            self._request("send", "SendMessageBatch")
            self.sent.extend(jobs[start : start + 10])


class FakeKie(_Faults):
    """kie.ai's API: download-url answers a fresh link on LINK_HOST for each call; record-info
    answers what `records[(path, task_id)]` holds (NotFoundError otherwise), `latency[task_id]`
    seconds late (passed with `sleep`, which a test may swap for a fake clock's)."""

    component = "kie"

    def __init__(self, trips: Trips | None = None) -> None:
        super().__init__(trips)
        self.records: dict[tuple[str, str], dict[str, Any]] = {}
        self.worst_case_seconds = KIE_TIMEOUTS.worst_case_seconds
        self.latency: dict[str, float] = {}
        self.sleep: Callable[[float], None] = time.sleep
        self.download_url_calls: dict[str, int] = {}
        self._links = 0
        self._lock = threading.Lock()

    def download_url(self, url: str) -> str:
        self._request("download_url", "POST download-url")
        with self._lock:
            self._links += 1
            self.download_url_calls[url] = self.download_url_calls.get(url, 0) + 1
            number = self._links
        parts = urlsplit(url)
        return f"https://{LINK_HOST}{parts.path}?link={number}"

    def record_info(self, path: str, task_id: str) -> dict[str, Any]:
        self._request("record_info", f"GET {path}")
        if seconds := self.latency.get(task_id):
            self.sleep(seconds)
        try:
            return self.records[(path, task_id)]
        except KeyError:
            raise NotFoundError(f"kie.ai has no record of task {task_id!r}") from None


# -- source ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class ServedFile:
    """A file the fake source serves at a path, and how it answers."""

    data: bytes
    content_type: str | None = "application/octet-stream"
    ranged: bool = True  # answers ranges with a strong ETag (pinned), else one plain 200 stream
    etag: str = '"v1"'
    # An origin whose bytes change on every request: each GET is answered from the file as it is,
    # then the file is replaced (other bytes, same size, another ETag). `served`: each GET's bytes.
    unstable: bool = False
    served: list[bytes] = dataclasses.field(default_factory=list)


class FakeStream:
    """An open download over a window of a served file (the opening range, or all of it)."""

    def __init__(
        self, data: bytes, total: int, content_type: str | None, version: SourceVersion | None
    ) -> None:
        self._data = data
        self._at = 0
        self._total = total
        self._content_type = content_type
        self._version = version

    @property
    def total_size(self) -> int | None:
        return self._total

    @property
    def content_type(self) -> str | None:
        return self._content_type

    @property
    def version(self) -> SourceVersion | None:
        return self._version

    @property
    def ranged(self) -> bool:
        return self._version is not None

    def fill(self, into: memoryview) -> int:
        chunk = self._data[self._at : self._at + len(into)]
        into[: len(chunk)] = chunk
        self._at += len(chunk)
        return len(chunk)


class FakeSource(_Faults):
    """Serves files by URL path (any host, any query: the link's signature), as HttpSource opens
    them: the first part as a range pinned to the file's ETag when `ranged`, else (or when opened
    without a first part) a whole stream.

    `fail("open")` / `fail("fetch_range")` break the next requests, `fail_range(start, ...)` the
    next fetches of one range; `expire_links()` makes every link issued so far answer 403
    (LinkExpiredError); `change(url, data)` makes a new version. Each range takes `range_seconds`.
    """

    component = "source"

    def __init__(self, trips: Trips | None = None, range_seconds: float = 0.0) -> None:
        super().__init__(trips)
        self.files: dict[str, ServedFile] = {}
        self.requests: dict[str, int] = {}  # GETs per path
        self.ranges: list[tuple[str, int]] = []  # (path, start) of every range fetched
        self.range_seconds = range_seconds
        self.most_in_flight = 0  # the most ranges fetched at once
        self._in_flight = 0
        self._range_faults: dict[int, list[Exception]] = {}
        self._expired: set[str] = set()
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def fail_range(self, start: int, *errors: Exception) -> None:
        """The next fetches of the range at `start` raise these, in order."""
        with self._lock:
            self._range_faults.setdefault(start, []).extend(errors)

    def serve(self, url: str, data: bytes, **how: Any) -> ServedFile:
        served = ServedFile(data, **how)
        self.files[urlsplit(url).path] = served
        return served

    def change(self, url: str, data: bytes) -> None:
        served = self.files[urlsplit(url).path]
        served.data = data
        served.etag = f'"v{hashlib.sha256(data).hexdigest()[:8]}"'

    def expire_links(self) -> None:
        with self._lock:
            self._expired |= self._seen

    def _get(self, operation: str, url: str) -> ServedFile:
        path = urlsplit(url).path
        with self._lock:
            self.requests[path] = self.requests.get(path, 0) + 1
            self._seen.add(url)
            expired = url in self._expired
        self._request(operation, "GET")
        if expired:
            raise LinkExpiredError(f"source {canonical_url(url)} answered HTTP 403 (link expired or refused)")
        served = self.files.get(path)
        if served is None:
            raise PermanentError(f"source {canonical_url(url)} answered HTTP 404")
        if not served.unstable:
            return served
        with self._lock:
            answered = dataclasses.replace(served)  # this request's version, before it is replaced
            served.served.append(served.data)
            served.data = served.data[1:] + served.data[:1]
            served.etag = f'"v{len(served.served) + 1}"'
        return answered

    @contextmanager
    def open(self, url: str, *, max_bytes: int, first_part: int | None) -> Iterator[FakeStream]:
        served = self._get("open", url)
        data, total = served.data, len(served.data)
        if total > max_bytes:
            raise SourceRefusedError(f"source declares {total} bytes, over MAX_FILE_BYTES ({max_bytes})")
        if served.ranged and total and first_part is not None:
            version = SourceVersion(total, served.etag, served.etag, None)
            yield FakeStream(data[:first_part], total, served.content_type, version)
        else:
            yield FakeStream(data, total, served.content_type if total else None, None)

    def fetch_range(self, url: str, start: int, into: memoryview, version: SourceVersion) -> None:
        served = self._get("fetch_range", url)
        with self._lock:
            self.ranges.append((urlsplit(url).path, start))
            faults = self._range_faults.get(start)
            fault = faults.pop(0) if faults else None
            self._in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self._in_flight)
        try:
            if self.range_seconds:
                time.sleep(self.range_seconds)  # a slow origin: other connections overlap this one
            if fault is not None:
                raise fault
            if served.etag != version.if_range or len(served.data) != version.total:
                raise SourceChangedError(f"source changed since the download began: range {start}")
            chunk = served.data[start : start + len(into)]
            into[: len(chunk)] = chunk
            if len(chunk) != len(into):
                raise RetryableError(f"range {start} ended after {len(chunk)} of {len(into)} bytes")
        finally:
            with self._lock:
                self._in_flight -= 1


# -- idempotency ----------------------------------------------------------------------------------


class MemoryCopyRecords(CopyRecords):
    """Powertools' persistence layer in memory, with the DynamoDB layer's put condition: a record
    is written unless one exists that has not expired and is not an in-progress one past its expiry."""

    def __init__(self, trips: Trips | None = None, taken_down: Callable[[str], bool] | None = None) -> None:
        super().__init__()
        self.trips = trips or Trips()
        self.taken_down = taken_down or (lambda task_id: False)  # the fence the opening write checks
        self.records: dict[str, DataRecord] = {}
        self.failures: dict[str, int] = {}  # PutItem / UpdateItem / DeleteItem / GetItem / BatchGetItem
        self._lock = threading.Lock()

    def fail(self, operation: str, times: int = 1) -> None:
        """The next `times` requests named `operation` (DynamoDB's name) fail."""
        self.failures[operation] = self.failures.get(operation, 0) + times

    def _request(self, operation: str) -> None:
        self.trips.add("idempotency", operation)
        if self.failures.get(operation, 0) > 0:
            self.failures[operation] -= 1
            raise _client_error(operation)

    def _get_record(self, idempotency_key: str) -> DataRecord:
        self._request("GetItem")
        try:
            return self.records[idempotency_key]
        except KeyError:
            raise IdempotencyItemNotFoundError from None

    def _put_record(self, data_record: DataRecord) -> None:
        task_id = self.opening_task()
        self._request("PutItem" if task_id is None else "TransactWriteItems")
        now = time.time()
        if task_id is not None and self.taken_down(task_id):
            raise TakenDownError("task taken down: nothing of it is copied again")
        with self._lock:
            old = self.records.get(data_record.idempotency_key)
            if old is not None and not _replaceable(old, now):
                raise IdempotencyItemAlreadyExistsError(old_data_record=old)
            self.records[data_record.idempotency_key] = data_record

    def _update_record(self, data_record: DataRecord) -> None:
        self._request("UpdateItem")
        with self._lock:
            old = self.records.get(data_record.idempotency_key)
            data_record.in_progress_expiry_timestamp = old.in_progress_expiry_timestamp if old else None
            self.records[data_record.idempotency_key] = data_record

    def _delete_record(self, data_record: DataRecord) -> None:
        self._request("DeleteItem")
        with self._lock:
            self.records.pop(data_record.idempotency_key, None)

    def get_records(self, keys: list[str]) -> list[DataRecord]:
        self._request("BatchGetItem")
        return [self.records[k] for k in keys if k in self.records]

    # Test helpers (no request).
    def expire_in_progress(self) -> None:
        """Every in-progress lock runs out, as when the invocation holding it was killed long ago."""
        for record in self.records.values():
            if record.status == STATUS_CONSTANTS["INPROGRESS"]:
                record.in_progress_expiry_timestamp = int((time.time() - 1) * 1000)

    def statuses(self) -> list[str]:
        return [r.status for r in self.records.values()]


def _replaceable(old: DataRecord, now: float) -> bool:
    if old.expiry_timestamp is not None and old.expiry_timestamp < now:
        return True
    expiry = old.in_progress_expiry_timestamp
    return old.status == STATUS_CONSTANTS["INPROGRESS"] and expiry is not None and expiry < now * 1000


class FakeLambdaContext:
    """A Lambda context with `remaining_ms` left (the in-progress lock's expiry comes from it)."""

    def __init__(self, remaining_ms: int = 900_000) -> None:
        self.function_name = "kie2s3-test"
        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# -- everything together ---------------------------------------------------------------------------

SETTINGS_ENV = {
    "BUCKET_NAME": BUCKET,
    "TASKS_TABLE": "tasks",
    "IDEMPOTENCY_TABLE": "idempotency",
    "KIE_API_KEY_SECRET": "kie2s3/kie-api-key",
    "KIE_WEBHOOK_HMAC_SECRET": "kie2s3/webhook-hmac-key",
    "COPY_MODE": "queue",
    "COPY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/copy-jobs",
}
# The secrets the fake Secrets Manager holds: id -> (AWSCURRENT, AWSPREVIOUS).
SECRETS: dict[str, tuple[str, str | None]] = {
    "kie2s3/kie-api-key": ("kie-api-key", None),
    "kie2s3/webhook-hmac-key": ("webhook-hmac-key", None),
    "kie2s3/callback-token": ("callback-token", None),
}


class FakeBus:
    """Takes every event but those it is told to refuse (each refusal `times` puts in a row)."""

    def __init__(self, refuse: dict[str, tuple[str, int]] | None = None, raises: int = 0) -> None:
        self.refuse = dict(refuse or {})
        self.raises = raises
        self.puts: list[list[str]] = []

    def put(self, events: Sequence[BusEvent]) -> list[str | None]:
        self.puts.append([e.dedupe_id for e in events])
        if self.raises:
            self.raises -= 1
            raise RetryableError("EventBridge PutEvents failed: ThrottlingException")
        results: list[str | None] = []
        for event in events:
            code, times = self.refuse.get(event.dedupe_id, (None, 0))
            if times:
                self.refuse[event.dedupe_id] = (code or "", times - 1)
            results.append(code if times else None)
        return results


@dataclasses.dataclass
class Fakes:
    """The fakes of one test and the Services over them (`services`, rebuilt by `with_`)."""

    trips: Trips
    ledger: FakeLedger
    store: FakeStore
    queue: FakeQueue
    kie: FakeKie
    source: FakeSource
    records: MemoryCopyRecords
    guard: CopyGuard
    bus: FakeBus
    services: Services
    secrets: dict[str, tuple[str, str | None]]

    def with_(self, **changes: Any) -> Services:
        """The services with some fields replaced (e.g. `retry=`, `shape=`, `queue=None`)."""
        self.services = dataclasses.replace(self.services, **changes)
        return self.services


def make_fakes(*, inline: bool = False, env: dict[str, str] | None = None, lambda_ms: int = 900_000) -> Fakes:
    """Fakes of every port and the Services over them: queue mode, or `inline` (no queue), with
    FAST_RETRY, settings from SETTINGS_ENV updated with `env`, and a registered Lambda context
    with `lambda_ms` left."""
    trips = Trips()
    values = {**SETTINGS_ENV, **(env or {})}
    if inline:
        values["COPY_MODE"] = "inline"
    settings = Settings.from_environ(values)
    secrets = dict(SECRETS)
    ledger, store, queue = FakeLedger(trips), FakeStore(trips, settings.bucket_name), FakeQueue(trips)
    records = MemoryCopyRecords(trips, taken_down=ledger.is_taken_down)
    guard = CopyGuard(records)
    guard.register_lambda_context(cast("LambdaContext", FakeLambdaContext(lambda_ms)))
    kie, source, bus = FakeKie(trips), FakeSource(trips), FakeBus()

    def secret(secret_id: str) -> str:
        return secrets[secret_id][0]

    def secret_versions(secret_id: str, refresh: bool) -> SecretVersions:
        current, previous = secrets[secret_id]
        return SecretVersions(current=current, previous=previous, rotated_at=0.0, fetched_at=time.time())

    services = Services(
        settings=settings,
        ledger=ledger,
        store=store,
        queue=queue if settings.copy_mode == "queue" else None,
        kie=kie,
        source=source,
        policy=SourcePolicy(settings.allowed_source_hosts, settings.allow_local_sources),
        secret=secret,
        secret_versions=secret_versions,
        guard=guard,
        bus=bus,
        retry=FAST_RETRY,
    )
    return Fakes(trips, ledger, store, queue, kie, source, records, guard, bus, services, secrets)


def _satisfy_ports(fakes: Fakes, upload: FakeUpload, stream: FakeStream) -> None:
    """Never called: mypy (which checks this file) proves that each fake implements its port."""
    ledger: ports.Ledger = fakes.ledger
    store: ports.ObjectStore = fakes.store
    multipart: ports.Upload = upload
    queue: ports.JobQueue = fakes.queue
    kie: ports.KieApi = fakes.kie
    source: ports.Source = fakes.source
    opened: ports.SourceStream = stream
    guard: ports.Guard = fakes.guard
    bus: ports.EventPublisher = fakes.bus
    del ledger, store, multipart, queue, kie, source, opened, guard, bus
