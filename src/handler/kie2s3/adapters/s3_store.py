"""S3 writes that can never overwrite: create-only single puts and a self-driven multipart upload."""

import base64
import hashlib
import io
import re
import threading
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Self, cast
from urllib.parse import quote, urlencode

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    MissingParametersError,
    ParamValidationError,
    ValidationError,
)
from isal import isal_zlib

from kie2s3.errors import ObjectExistsError, PermanentError, RetryableError
from kie2s3.observability import logger
from kie2s3.ports import MAX_PARTS

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

_RETRYABLE_S3_CODES = frozenset(
    {"ConditionalRequestConflict", "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"}
)
# What botocore raises when it refuses a request before sending it (the same request fails the same
# way every time); every other BotoCoreError is a connection or transfer fault.
_REFUSED_BEFORE_SENDING = (ParamValidationError, ValidationError, MissingParametersError)
# S3 user metadata is US-ASCII (docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html):
# printable ASCII goes as it is (`%` included, so a percent-encoded URL is not encoded twice).
_METADATA_SAFE = "".join(chr(c) for c in range(0x20, 0x7F))
# S3 tag values: letters, digits, spaces and + - = . _ : / @, at most 256 characters
# (docs.aws.amazon.com/AmazonS3/latest/userguide/object-tagging.html); ASCII only here.
_NOT_IN_TAG_VALUE = re.compile(r"[^A-Za-z0-9 +\-=._:/@]+")
MAX_TAG_VALUE_CHARS = 256
# The metadata that keeps a callback's `?family=` hint beside its archived body, for replays.
RAW_HINT = "family-hint"


def _translate(exc: ClientError | BotoCoreError, action: str) -> Exception:
    if isinstance(exc, _REFUSED_BEFORE_SENDING):
        return PermanentError(f"S3 {action} refused before sending: {type(exc).__name__}")
    if isinstance(exc, BotoCoreError):
        return RetryableError(f"S3 {action} failed: {type(exc).__name__}")
    code = exc.response.get("Error", {}).get("Code", "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code == "PreconditionFailed" or status == 412:
        return ObjectExistsError(f"S3 {action}: the key already holds an object")
    if code in _RETRYABLE_S3_CODES or status in (409, 429) or status >= 500:
        return RetryableError(f"S3 {action} failed: {code or status}")
    return PermanentError(f"S3 {action} failed: {code or status}")


def ascii_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """Metadata S3 accepts: anything but printable ASCII in a value is percent-encoded (UTF-8)."""
    return {name: quote(value, safe=_METADATA_SAFE) for name, value in metadata.items()}


def safe_tags(tags: dict[str, str]) -> dict[str, str]:
    """Tags S3 accepts: each run of characters a tag value may not hold becomes `-`, cut to 256."""
    return {name: _NOT_IN_TAG_VALUE.sub("-", value)[:MAX_TAG_VALUE_CHARS] for name, value in tags.items()}


def b64_digest(digest: bytes) -> str:
    """The base64 form S3 wants for x-amz-checksum-* values."""
    return base64.b64encode(digest).decode()


class S3Store:
    """The archive bucket. Every write is create-only (`IfNoneMatch="*"`): a duplicate never overwrites.

    With `kms_key_arn`, every write asks for SSE-KMS with that key and an S3 Bucket Key, whatever the
    bucket's default encryption; `storage_class` is every archived file's (raw callbacks stay STANDARD).
    """

    def __init__(
        self, client: "S3Client", bucket: str, *, kms_key_arn: str = "", storage_class: str = "STANDARD"
    ) -> None:
        self.client = client
        self.bucket = bucket
        # On PutObject and CreateMultipartUpload only: S3 refuses them on UploadPart and Complete.
        self._encryption: dict[str, Any] = (
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_arn, "BucketKeyEnabled": True}
            if kms_key_arn
            else {}
        )
        # STANDARD is S3's default: not sent, so a default deployment's requests are what they were.
        self._archive_class: dict[str, Any] = (
            {} if storage_class == "STANDARD" else {"StorageClass": storage_class}
        )

    def _write_options(self, *, archive: bool) -> dict[str, Any]:
        """The encryption (every write) and storage class (archived files only) of a new object."""
        return {**self._encryption, **(self._archive_class if archive else {})}

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
        """Store a small object in one request; ObjectExistsError when the key is taken.

        `archive=False` (a raw callback body): the storage class stays STANDARD.
        """
        extra: dict[str, Any] = {"Tagging": urlencode(safe_tags(tags))} if tags else {}
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                # The algorithm named too: a bucket with Object Lock's default retention refuses a
                # PutObject that carries neither it nor Content-MD5.
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=b64_digest(checksum_sha256),
                Metadata=ascii_metadata(metadata),
                IfNoneMatch="*",
                **extra,
                **self._write_options(archive=archive),
            )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, "PutObject") from exc

    def put_raw(self, key: str, body: bytes, *, family_hint: str | None = None) -> None:
        """Archive a callback body as received, with its `?family=` hint (create-only; the same key
        means the same body)."""
        try:
            self.put_new(
                key,
                body,
                content_type="application/json",
                checksum_sha256=hashlib.sha256(body).digest(),
                metadata={RAW_HINT: family_hint} if family_hint else {},
                archive=False,
            )
        except ObjectExistsError:
            return

    def raw_keys(self, prefix: str, limit: int = 100) -> list[str]:
        """The keys of archived callback bodies under `prefix`, newest first (at most `limit`)."""
        try:
            listing = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1000)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, "ListObjectsV2") from exc
        # Keys end `<received ms>-<digest>.json`: the newest sort last.
        return sorted((o["Key"] for o in listing.get("Contents", [])), reverse=True)[:limit]

    def get_raw(self, key: str) -> tuple[bytes, str | None]:
        """An archived callback body and the `?family=` hint it arrived with."""
        try:
            found = self.client.get_object(Bucket=self.bucket, Key=key)
            body = found["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, "GetObject") from exc
        return body, found.get("Metadata", {}).get(RAW_HINT)

    def multipart_upload(self, key: str, *, content_type: str, metadata: dict[str, str]) -> "MultipartUpload":
        """A multipart upload of `key` with CRC32 part checksums; use it as a context manager.

        S3 creates it on `create()` or, at the latest, when the first part is sent: never before the
        copy needs it, and off the caller's path (the ranged pipeline creates it while parts download).
        CRC32, not SHA-256, for parts: S3 verifies either, and the copy already makes one SHA-256 pass
        over every byte (the whole file's); a SHA-256 per part would be a second one at twice a
        CRC32's cost. ISA-L computes the CRC32 (the same value as zlib's, at 9.7 GB/s here against
        2.6). A single PUT's body is the whole file, so its SHA-256 serves S3 at no extra cost.
        """
        return MultipartUpload(
            self.client,
            self.bucket,
            key,
            content_type=content_type,
            metadata=metadata,
            create_options=self._write_options(archive=True),
        )

    def set_tags(self, key: str, tags: dict[str, str]) -> None:
        """Tag an object (tags, unlike metadata, can be written after a multipart upload completes).

        A tag write replaces the object's whole tag set: `tags` must hold every tag it keeps.
        """
        try:
            self.client.put_object_tagging(
                Bucket=self.bucket,
                Key=key,
                Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in safe_tags(tags).items()]},
            )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, "PutObjectTagging") from exc

    def describe(self, key: str) -> dict[str, str] | None:
        """The object's metadata and tags merged (tags win), or None when there is no object."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
            tagging = self.client.get_object_tagging(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise _translate(exc, "HeadObject") from exc
        except BotoCoreError as exc:
            raise _translate(exc, "HeadObject") from exc
        found = {k.lower(): v for k, v in head.get("Metadata", {}).items()}
        found.update({t["Key"]: t["Value"] for t in tagging.get("TagSet", [])})
        found["content-type"] = head.get("ContentType", "")
        found["content-length"] = str(head.get("ContentLength", ""))
        return found

    def abort_stale_uploads(self, prefix: str, initiated_before: datetime, limit: int = 1000) -> list[str]:
        """Abort the multipart uploads under `prefix` begun before `initiated_before`; their keys.

        A bucket the stack does not own may lack the abort-incomplete-multipart lifecycle rule, and an
        invocation killed mid-copy leaves its upload's parts billed until something aborts it. Only
        uploads under `prefix` (kie2s3's own: an empty prefix is refused), and no more pages once
        `limit` are aborted (the rest next time). An upload that ended meanwhile is skipped.
        """
        if not prefix:
            raise ValueError("an empty prefix would reach multipart uploads that are not kie2s3's")
        aborted: list[str] = []
        markers: dict[str, str] = {}
        while len(aborted) < limit:
            try:
                page = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix, **markers)  # type: ignore[arg-type]
            except (ClientError, BotoCoreError) as exc:
                raise _translate(exc, "ListMultipartUploads") from exc
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < initiated_before and self._abort(upload["Key"], upload["UploadId"]):
                    aborted.append(upload["Key"])
            if not page.get("IsTruncated"):
                break
            markers = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}
        return aborted

    def _abort(self, key: str, upload_id: str) -> bool:
        """Abort one upload; False when it is gone already (completed or aborted meanwhile)."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchUpload", "404"):
                return False
            raise _translate(exc, "AbortMultipartUpload") from exc
        except BotoCoreError as exc:
            raise _translate(exc, "AbortMultipartUpload") from exc
        return True

    def presigned_get(self, key: str, ttl_seconds: int) -> str:
        """A presigned GET of the object, valid `ttl_seconds` (signed here: no request is made)."""
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl_seconds
        )

    def sha256_of(self, key: str) -> str:
        """The SHA-256 of a stored object, streamed (for objects whose tag is missing)."""
        digest = hashlib.sha256()
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            for chunk in body.iter_chunks(1024**2):
                digest.update(chunk)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, "GetObject") from exc
        return digest.hexdigest()

    def remove(
        self,
        prefix: str,
        *,
        exact: bool,
        bypass_governance: bool = False,
        only: Callable[[str], bool] | None = None,
    ) -> dict[str, int]:
        """Delete every version (and delete marker) of the key `prefix` (`exact`) or of every key
        under it (those `only` accepts, when given); for each key found, how many versions Object
        Lock kept.

        A key with versions kept gets a new delete marker, so it is gone from GET and listings while
        its retention lasts. `bypass_governance` asks S3 to lift governance-mode retention, which
        only a principal with s3:BypassGovernanceRetention may do; compliance mode lifts for no one.
        """
        kept: dict[str, int] = {}
        extra: dict[str, Any] = {"BypassGovernanceRetention": True} if bypass_governance else {}
        for key, version in self._versions(prefix, exact):
            if only is not None and not only(key):
                continue
            kept.setdefault(key, 0)
            try:
                self.client.delete_object(Bucket=self.bucket, Key=key, VersionId=version, **extra)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "AccessDenied":
                    raise _translate(exc, "DeleteObject") from exc
                kept[key] += 1
            except BotoCoreError as exc:
                raise _translate(exc, "DeleteObject") from exc
        for key in (k for k, n in kept.items() if n):
            try:
                self.client.delete_object(Bucket=self.bucket, Key=key)  # a delete marker hides it
            except (ClientError, BotoCoreError) as exc:
                raise _translate(exc, "DeleteObject") from exc
        return kept

    def _versions(self, prefix: str, exact: bool) -> list[tuple[str, str]]:
        """(key, version id) of every version and delete marker under `prefix` (of it alone: `exact`)."""
        found: list[tuple[str, str]] = []
        markers: dict[str, str] = {}
        while True:
            try:
                page = self.client.list_object_versions(Bucket=self.bucket, Prefix=prefix, **markers)  # type: ignore[arg-type]
            except (ClientError, BotoCoreError) as exc:
                raise _translate(exc, "ListObjectVersions") from exc
            for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                if not exact or entry["Key"] == prefix:
                    found.append((entry["Key"], entry.get("VersionId") or "null"))
            if not page.get("IsTruncated"):
                return found
            markers = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}


class _ViewReader(io.RawIOBase):
    """A read-only, seekable file over a memoryview: botocore streams a part from a reused buffer."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view
        self._at = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> Any:
        # A view of the buffer, not a copy: botocore hashes it and http.client sends it as is.
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._at + size)
        chunk = self._view[self._at : end]
        self._at = end
        return chunk

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), len(self._view) - self._at)
        buffer[:n] = self._view[self._at : self._at + n]
        self._at += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._at, io.SEEK_END: len(self._view)}[whence]
        self._at = max(0, base + offset)
        return self._at

    def tell(self) -> int:
        return self._at


def _body(data: memoryview) -> Any:
    """The part as a request body, never copied.

    A view of a whole buffer goes as the buffer itself: urllib3 sends a bytes-like body in one
    call, where it reads a file-like one 16 KiB at a time (a loop that cost about 0.4 s of CPU per
    GiB). A view of part of a buffer (a file's short last part) goes as a file over the view.
    """
    whole = data.obj
    if isinstance(whole, bytes | bytearray) and data.nbytes == len(whole):
        return whole
    return cast("IO[bytes]", _ViewReader(data))


class MultipartUpload:
    """One multipart upload; `upload_part` may be called from several threads at once.

    The caller owns concurrency and buffers (parts are sent straight from its memory). Leaving the
    `with` block without `complete()` aborts the upload: no part is left billed or visible.
    """

    def __init__(
        self,
        client: "S3Client",
        bucket: str,
        key: str,
        *,
        content_type: str,
        metadata: dict[str, str],
        create_options: dict[str, Any] | None = None,
    ) -> None:
        self._client = client
        self._bucket = bucket
        self.key = key
        self._content_type = content_type
        self._metadata = metadata
        self._create_options = create_options or {}  # encryption and storage class
        self.upload_id: str | None = None  # S3's, once the upload is created
        self._creating = threading.Lock()
        self._parts: dict[int, CompletedPartTypeDef] = {}
        self._lock = threading.Lock()
        self._completed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._completed:
            self.abort()

    @property
    def parts_done(self) -> int:
        """How many parts S3 has accepted so far."""
        return len(self._parts)

    def create(self) -> str:
        """Create the upload in S3 unless done already (thread-safe); its UploadId."""
        with self._creating:
            if self.upload_id is None:
                if self._completed:  # aborted before any part: never create an upload no one will end
                    raise PermanentError(f"the upload of {self.key} was aborted")
                try:
                    created = self._client.create_multipart_upload(
                        Bucket=self._bucket,
                        Key=self.key,
                        ContentType=self._content_type,
                        Metadata=ascii_metadata(self._metadata),
                        ChecksumAlgorithm="CRC32",
                        **self._create_options,
                    )
                except (ClientError, BotoCoreError) as exc:
                    raise _translate(exc, "CreateMultipartUpload") from exc
                self.upload_id = created["UploadId"]
            return self.upload_id

    def upload_part(self, number: int, data: memoryview) -> None:
        """Send part `number` (1-based) with its CRC32 checksum, which S3 verifies."""
        if not 1 <= number <= MAX_PARTS:
            raise PermanentError(f"part {number} is outside 1..{MAX_PARTS}: the part size is too small")
        upload_id = self.create()
        checksum = b64_digest(isal_zlib.crc32(data).to_bytes(4, "big"))
        try:
            answer = self._client.upload_part(
                Bucket=self._bucket,
                Key=self.key,
                UploadId=upload_id,
                PartNumber=number,
                Body=_body(data),
                ChecksumCRC32=checksum,
            )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, f"UploadPart {number}") from exc
        with self._lock:
            self._parts[number] = {"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32": checksum}

    def complete(self) -> None:
        """Complete create-only with every uploaded part; ObjectExistsError when the key is taken."""
        if self.upload_id is None:
            raise PermanentError("a multipart upload needs at least one part")
        parts = [self._parts[n] for n in sorted(self._parts)]
        try:
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, "CompleteMultipartUpload") from exc
        self._completed = True

    def abort(self) -> None:
        """Abort the upload (best effort: the bucket's lifecycle rule removes what an abort misses)."""
        self._completed = True
        with self._creating:  # an UploadPart still creating the upload finishes first
            if self.upload_id is None:
                return
        try:
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=self.key, UploadId=self.upload_id)
        except (ClientError, BotoCoreError) as exc:
            logger.warning(
                "multipart abort failed; the lifecycle rule will remove it", key=self.key, error=str(exc)
            )
