"""One transfer: a fresh link from kie.ai, the source opened, then one PUT, one stream or ranged parts
(and, should the source change version between ranges, one plain GET)."""

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kie2s3.errors import ObjectExistsError, PermanentError, RetryableError, SourceChangedError
from kie2s3.media import SNIFF_BYTES, sniff_content_type
from kie2s3.models import CopyJob, TransferResult
from kie2s3.observability import logger
from kie2s3.ports import KieApi, ObjectStore, Source, SourceStream, part_size_for
from kie2s3.sources import SourcePolicy, canonical_url
from kie2s3.transfer.objects import object_metadata, object_tags
from kie2s3.transfer.pipeline import Pipeline, PipelineShape


class _Links:
    """The file's download link: resolved through kie.ai's download-url, again when it expires."""

    def __init__(self, kie: KieApi, policy: SourcePolicy, job: CopyJob) -> None:
        self._kie = kie
        self._policy = policy
        self._job = job
        self._link: str | None = None
        self._lock = threading.Lock()

    def get(self, refresh: bool = False) -> str:
        """The current link (policy-checked), or a fresh one when `refresh` (a 20-minute link expired)."""
        with self._lock:
            if self._link is None or refresh:
                self._link = self._policy.check(self._kie.download_url(self._policy.check(self._job.source)))
                logger.info("download link resolved", index=self._job.index, link=canonical_url(self._link))
            return self._link


@dataclass(frozen=True)
class Transfer:
    """Copies one file into its create-only object, verified: the bytes only.

    It knows nothing of the ledger, idempotency or metrics, and retries nothing but a broken byte
    range (kie2s3/retries.py) and, once, from one plain GET, a ranged download whose source changed
    version: any other fault is raised (RetryableError or PermanentError) for its
    caller to retry the whole transfer. Memory is the pipeline's buffers, whatever the file size;
    a failed multipart upload is aborted.
    """

    kie: KieApi
    policy: SourcePolicy
    source: Source
    store: ObjectStore
    shape: PipelineShape
    max_file_bytes: int
    # No object is stored after this (time.monotonic()): the copy's lock may have expired by then.
    commit_by: float | None = None

    def run(self, job: CopyJob) -> TransferResult:
        """Copy the job's file to `job.key`; what was stored.

        A file that fits in one part goes in one PUT that carries its tags; a larger one in a
        multipart upload whose tags are left to the caller (`tagged` is False: its digest is known
        only at the end, and a tag write replaces the whole set). When the key holds the same bytes
        already, that object is the result; different bytes are a PermanentError.

        A source that answers another version between the requests of a ranged download (its file
        replaced meanwhile, or an origin whose bytes change on every request) is copied again from
        one plain GET, streamed and hashed as it arrives like any single-stream source: one answer
        holds one version, so what it held is archived, and the result says `source_unstable`.
        That GET's own faults are raised like any other.
        """
        links = _Links(self.kie, self.policy, job)
        try:
            return self._copy(job, links, ranged=True)
        except SourceChangedError as exc:  # the ranged upload is aborted: nothing of it is kept
            logger.warning(
                "source changed between requests: one plain GET", index=job.index, reason=exc.reason
            )
        return self._copy(job, links, ranged=False).model_copy(update={"source_unstable": True})

    def _copy(self, job: CopyJob, links: _Links, *, ranged: bool) -> TransferResult:
        """One download of the file into its object: opened with a first range (`ranged`), else with
        one plain GET."""
        preferred = self.shape.part_bytes
        # The opening request asks for a first part big enough for the largest file allowed; once the
        # source has declared the size, the parts are sized for it (S3: 5 MiB-5 GiB, at most 10,000).
        opening = part_size_for(None, preferred, self.max_file_bytes) if ranged else None
        with self.source.open(links.get(), max_bytes=self.max_file_bytes, first_part=opening) as stream:
            total = stream.total_size
            part_bytes = part_size_for(total, preferred, self.max_file_bytes)
            # A file declared to fit in one part gets a buffer of its size (none for an empty one).
            first = bytearray(part_bytes if total is None or total > part_bytes else total)
            head = stream.fill(memoryview(first)[:SNIFF_BYTES])
            content_type = sniff_content_type(bytes(first[:head]), stream.content_type)
            multipart = _Multipart(self, job, content_type, first, part_bytes, total)
            # A large file from a source that answers ranges of a pinned version goes straight into the
            # parallel pipeline, the rest of its first part still arriving on the opening connection.
            version = stream.version
            if version is not None and version.total > part_bytes:
                rest = _rest_of_first_part(stream, head)
                return multipart.run(
                    lambda pipeline: pipeline.run_ranges(self.source, links.get, version, rest)
                )
            size = head
            if head == SNIFF_BYTES:
                size += stream.fill(memoryview(first)[head:])
            if stream.ranged and size != total:
                raise RetryableError(f"first range ended after {size} of {total} bytes")
            if (total is not None and total <= part_bytes) or size < part_bytes:
                # One part or less (an empty source included): a single create-only PUT.
                return self._put_whole(job, bytes(first[:size]), content_type)
            return multipart.run(lambda pipeline: pipeline.run_stream(stream, size))

    def may_store(self) -> None:
        """RetryableError past `commit_by`: what is stored must land while the copy's lock holds (a
        takedown waits for copies under way only until their locks expire)."""
        if self.commit_by is not None and time.monotonic() > self.commit_by:
            raise RetryableError(
                "too little of the invocation left to store the copy while its lock holds: the next delivery copies it"
            )

    def _put_whole(self, job: CopyJob, body: bytes, content_type: str) -> TransferResult:
        """A file that fits in one part: one create-only PUT, SHA-256 in metadata and tag."""
        whole = hashlib.sha256(body)
        digest = whole.hexdigest()
        result = TransferResult(
            bucket=self.store.bucket,
            key=job.key,
            bytes=len(body),
            sha256=digest,
            content_type=content_type,
            tagged=True,
        )
        self.may_store()
        try:
            self.store.put_new(
                job.key,
                body,
                content_type=content_type,
                checksum_sha256=whole.digest(),
                metadata={**object_metadata(job), "sha256": digest},
                tags=object_tags(job, digest),
            )
        except ObjectExistsError:
            return self.already_archived(job, result)
        return result

    def already_archived(self, job: CopyJob, ours: TransferResult) -> TransferResult:
        """The key is taken (an earlier delivery won the race): accept it only if it holds the same
        bytes, and then tagged (an object completed but never tagged is hashed, then tagged)."""
        store = self.store
        found = store.describe(ours.key) or {}
        theirs = found.get("sha256")
        if theirs is None:
            # Completed but killed before tagging: hash what is stored rather than trust it.
            theirs = store.sha256_of(ours.key)
            if theirs == ours.sha256:
                store.set_tags(ours.key, object_tags(job, theirs))
        if theirs != ours.sha256:
            return self._adopted(job, ours, found, theirs)
        logger.info("file already archived", key=ours.key)
        return ours.model_copy(
            update={"content_type": found.get("content-type") or ours.content_type, "tagged": True}
        )

    def _adopted(
        self, job: CopyJob, ours: TransferResult, found: dict[str, str], theirs: str
    ) -> TransferResult:
        """Other bytes under the key: an earlier delivery of this same file (its metadata names the
        task, index and source) stored them whole from another version of the source, and the archive
        keeps them (killed before its ledger write; the source changed since). Anything else: refused."""
        if any(found.get(name) != value for name, value in object_metadata(job).items() if name != "model"):
            raise PermanentError(f"{ours.key} already holds different bytes: not overwriting it")
        if found.get("sha256") != theirs:  # it was stored, never tagged: hashed above
            self.store.set_tags(ours.key, object_tags(job, theirs))
        logger.warning("file already archived from another version of its source", key=ours.key)
        return ours.model_copy(
            update={
                "sha256": theirs,
                "bytes": int(found["content-length"]),
                "content_type": found.get("content-type") or ours.content_type,
                "tagged": True,
            }
        )


@dataclass(frozen=True)
class _Multipart:
    """A file larger than one part: a multipart upload fed by the pipeline, first part in hand."""

    transfer: Transfer
    job: CopyJob
    content_type: str
    first: bytearray
    part_bytes: int
    total: int | None

    def run(self, feed: Callable[[Pipeline], tuple[int, str]]) -> TransferResult:
        """Upload what `feed` moves through the pipeline, then complete it create-only."""
        transfer, job = self.transfer, self.job
        metadata = object_metadata(job)
        with transfer.store.multipart_upload(
            job.key, content_type=self.content_type, metadata=metadata
        ) as upload:
            shape = transfer.shape
            pipeline = Pipeline(
                PipelineShape(self.part_bytes, shape.buffers, shape.connections, shape.uploads),
                upload,
                first=self.first,
                label={"index": job.index, "total": self.total},
            )
            copied, digest = feed(pipeline)
            result = TransferResult(
                bucket=transfer.store.bucket,
                key=job.key,
                bytes=copied,
                sha256=digest,
                content_type=self.content_type,
            )
            transfer.may_store()  # inside the upload: refused, it is aborted
            try:
                upload.complete()
            except ObjectExistsError:
                return transfer.already_archived(job, result)
        return result


def _rest_of_first_part(stream: SourceStream, head: int) -> Callable[[memoryview], None]:
    """Fills a first part whose `head` bytes are read with the rest of the opening range."""

    def fill(part: memoryview) -> None:
        got = head + stream.fill(part[head:])
        if got != len(part):
            raise RetryableError(f"first range ended after {got} of {len(part)} bytes")

    return fill
