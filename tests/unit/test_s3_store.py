"""The exact S3 requests are the contract here (create-only, checksums, abort): botocore's Stubber."""

import base64
import hashlib
import zlib

import boto3
import pytest
from botocore.stub import ANY, Stubber

from kie2s3.adapters.s3_store import S3Store
from kie2s3.errors import ObjectExistsError, PermanentError, RetryableError
from kie2s3.ports import MAX_PARTS, MIN_PART_BYTES, part_size_for

BUCKET = "archive-bucket"
KEY = "kie/t1/00.mp4"


class _Streams:
    """Matches a streamed Body (the part is sent from a reused buffer) by the bytes it yields."""

    def __init__(self, expected: bytes) -> None:
        self.expected = expected

    def __eq__(self, body: object) -> bool:
        read = getattr(body, "read", None)
        if read is None:
            return False
        body.seek(0)  # type: ignore[attr-defined]
        return bytes(read()) == self.expected

    def __hash__(self) -> int:
        return hash(self.expected)


def _b64sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _b64crc(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def _expect_create(stubber: Stubber, upload_id: str) -> None:
    """CreateMultipartUpload as every copy sends it: the CRC32 checksum algorithm declared."""
    stubber.add_response(
        "create_multipart_upload",
        {"UploadId": upload_id},
        {
            "Bucket": BUCKET,
            "Key": KEY,
            "ContentType": "video/mp4",
            "Metadata": {},
            "ChecksumAlgorithm": "CRC32",
        },
    )


def test_put_new_is_create_only_with_sha256_checksum(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stubber = stubbed
    body = b"tiny image"
    stubber.add_response(
        "put_object",
        {},
        {
            "Bucket": BUCKET,
            "Key": KEY,
            "Body": body,
            "ContentType": "image/png",
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": _b64sha(body),
            "Metadata": {"sha256": hashlib.sha256(body).hexdigest()},
            "IfNoneMatch": "*",
            "Tagging": "sha256=" + hashlib.sha256(body).hexdigest(),
        },
    )
    digest = hashlib.sha256(body)
    store.put_new(
        KEY,
        body,
        content_type="image/png",
        checksum_sha256=digest.digest(),
        metadata={"sha256": digest.hexdigest()},
        tags={"sha256": digest.hexdigest()},
    )


def test_put_new_precondition_failed_means_object_exists(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error("put_object", "PreconditionFailed", http_status_code=412)
    with pytest.raises(ObjectExistsError):
        store.put_new(KEY, b"x", content_type="image/png", checksum_sha256=b"0" * 32, metadata={})


class _Same:
    """Matches the very object given (a whole part buffer is sent as is, not copied)."""

    def __init__(self, expected: object) -> None:
        self.expected = expected

    def __eq__(self, body: object) -> bool:
        return body is self.expected

    def __hash__(self) -> int:
        return id(self.expected)


def test_multipart_sends_part_checksums_and_completes_create_only(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stubber = stubbed
    parts = [b"a" * 16, b"b" * 16, b"c" * 3]
    # Parts come from reused 16-byte buffers: the whole ones are sent as the buffer, the short last
    # one as a stream over its view.
    buffers = [bytearray(data.ljust(16, b"\0")) for data in parts]
    views = [memoryview(buffer)[: len(data)] for buffer, data in zip(buffers, parts, strict=True)]
    stubber.add_response(
        "create_multipart_upload",
        {"UploadId": "up-1", "Bucket": BUCKET, "Key": KEY},
        {
            "Bucket": BUCKET,
            "Key": KEY,
            "ContentType": "video/mp4",
            "Metadata": {"task-id": "t1"},
            "ChecksumAlgorithm": "CRC32",
        },
    )
    for number, data in enumerate(parts, start=1):
        stubber.add_response(
            "upload_part",
            {"ETag": f'"etag-{number}"'},
            {
                "Bucket": BUCKET,
                "Key": KEY,
                "UploadId": "up-1",
                "PartNumber": number,
                "Body": _Same(buffers[number - 1]) if len(data) == 16 else _Streams(data),
                "ChecksumCRC32": _b64crc(data),
            },
        )
    stubber.add_response(
        "complete_multipart_upload",
        {},
        {
            "Bucket": BUCKET,
            "Key": KEY,
            "UploadId": "up-1",
            "IfNoneMatch": "*",
            "MultipartUpload": {
                "Parts": [
                    {"PartNumber": n, "ETag": f'"etag-{n}"', "ChecksumCRC32": _b64crc(d)}
                    for n, d in enumerate(parts, start=1)
                ]
            },
        },
    )
    upload = store.multipart_upload(KEY, content_type="video/mp4", metadata={"task-id": "t1"})
    with upload:
        for number, view in enumerate(views, start=1):
            upload.upload_part(number, view)
        upload.complete()


def test_multipart_aborts_when_a_part_fails(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stubber = stubbed
    _expect_create(stubber, "up-2")
    stubber.add_client_error("upload_part", "InternalError", http_status_code=500)
    stubber.add_response("abort_multipart_upload", {}, {"Bucket": BUCKET, "Key": KEY, "UploadId": "up-2"})
    upload = store.multipart_upload(KEY, content_type="video/mp4", metadata={})
    with pytest.raises(RetryableError, match="UploadPart 1"), upload:
        upload.upload_part(1, memoryview(b"x" * 8))


def test_multipart_aborts_when_complete_finds_key_taken(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stubber = stubbed
    _expect_create(stubber, "up-3")
    stubber.add_response(
        "upload_part",
        {"ETag": '"e1"'},
        {
            "Bucket": BUCKET,
            "Key": KEY,
            "UploadId": "up-3",
            "PartNumber": 1,
            "Body": ANY,
            "ChecksumCRC32": ANY,
        },
    )
    stubber.add_client_error("complete_multipart_upload", "PreconditionFailed", http_status_code=412)
    stubber.add_response("abort_multipart_upload", {}, {"Bucket": BUCKET, "Key": KEY, "UploadId": "up-3"})
    upload = store.multipart_upload(KEY, content_type="video/mp4", metadata={})
    with pytest.raises(ObjectExistsError), upload:
        upload.upload_part(1, memoryview(b"y" * 8))
        upload.complete()


def test_multipart_aborts_when_caller_fails_midway(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stubber = stubbed
    _expect_create(stubber, "up-4")
    stubber.add_response(
        "upload_part",
        {"ETag": '"e1"'},
        {
            "Bucket": BUCKET,
            "Key": KEY,
            "UploadId": "up-4",
            "PartNumber": 1,
            "Body": ANY,
            "ChecksumCRC32": ANY,
        },
    )
    stubber.add_response("abort_multipart_upload", {}, {"Bucket": BUCKET, "Key": KEY, "UploadId": "up-4"})
    upload = store.multipart_upload(KEY, content_type="video/mp4", metadata={})
    with pytest.raises(RetryableError, match="download interrupted"), upload:
        upload.upload_part(1, memoryview(b"z" * 8))
        raise RetryableError("download interrupted after 10 bytes")


def test_multipart_failing_before_its_first_part_creates_nothing(stubbed: tuple[S3Store, Stubber]) -> None:
    # No CreateMultipartUpload and no abort expected: the stubber fails on any request.
    store, _stubber = stubbed
    upload = store.multipart_upload(KEY, content_type="video/mp4", metadata={})
    with pytest.raises(RetryableError, match="download interrupted"), upload:
        raise RetryableError("download interrupted after 10 bytes")
    with pytest.raises(PermanentError, match="aborted"):
        upload.upload_part(1, memoryview(b"late"))


def test_s3_error_codes_translate(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error("put_object", "AccessDenied", http_status_code=403)
    with pytest.raises(PermanentError, match="AccessDenied"):
        store.put_new(KEY, b"x", content_type="image/png", checksum_sha256=b"0" * 32, metadata={})


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (1024, 8 * 1024**2),
        (200 * 1024**2, 8 * 1024**2),
        (100 * 1024**3, 11 * 1024**2),
        (None, 8 * 1024**2),
    ],
)
def test_part_size_for_fits_ten_thousand_parts(length: int | None, expected: int) -> None:
    size = part_size_for(length, 8 * 1024**2, 5 * 1024**3)
    assert size == expected
    assert size >= MIN_PART_BYTES
    assert (length or 5 * 1024**3) <= size * MAX_PARTS


def test_metadata_values_are_sent_percent_encoded_ascii(stubbed: tuple[S3Store, Stubber]) -> None:
    # S3 user metadata is US-ASCII: a source path in Japanese with a space goes percent-encoded.
    store, stubber = stubbed
    source = "https://tempfile.aiquickdraw.com/p/日本語の画像 1.png"
    sent = "https://tempfile.aiquickdraw.com/p/%E6%97%A5%E6%9C%AC%E8%AA%9E%E3%81%AE%E7%94%BB%E5%83%8F 1.png"
    stubber.add_response(
        "put_object",
        {},
        {
            "Bucket": BUCKET,
            "Key": KEY,
            "Body": b"x",
            "ContentType": "image/png",
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": ANY,
            "Metadata": {"source": sent, "task-id": "t1", "note": "tab%09and%0Anewline, 100% ascii"},
            "IfNoneMatch": "*",
        },
    )
    metadata = {"source": source, "task-id": "t1", "note": "tab\tand\nnewline, 100% ascii"}
    store.put_new(KEY, b"x", content_type="image/png", checksum_sha256=b"0" * 32, metadata=metadata)


def test_metadata_already_percent_encoded_is_sent_unchanged(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stubber = stubbed
    source = "https://tempfile.aiquickdraw.com/p/%E6%97%A5%20x.png"
    stubber.add_response(
        "create_multipart_upload",
        {"UploadId": "u1"},
        {
            "Bucket": BUCKET,
            "Key": KEY,
            "ContentType": "video/mp4",
            "Metadata": {"source": source},
            "ChecksumAlgorithm": "CRC32",
        },
    )
    store.multipart_upload(KEY, content_type="video/mp4", metadata={"source": source}).create()


@pytest.mark.parametrize(
    ("bucket", "key"), [(BUCKET, ""), ("not a bucket name!", KEY)], ids=["empty-key", "bad-bucket-name"]
)
def test_request_refused_before_sending_is_permanent(bucket: str, key: str) -> None:
    # Nothing listens on the discard port: a request that were sent would fail as a passing fault.
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    store = S3Store(client, bucket)
    with pytest.raises(PermanentError, match="ParamValidationError") as refused:
        store.put_new(key, b"x", content_type="image/png", checksum_sha256=b"0" * 32, metadata={})
    assert not isinstance(refused.value, RetryableError)
    with pytest.raises(PermanentError, match="ParamValidationError"):
        store.multipart_upload(key, content_type="video/mp4", metadata={}).create()


def test_client_side_validation_errors_are_permanent_and_connection_errors_retryable() -> None:
    from botocore.exceptions import (
        EndpointConnectionError,
        MissingParametersError,
        ParamValidationError,
        UnknownKeyError,
    )

    from kie2s3.adapters.s3_store import _translate

    refused = [
        ParamValidationError(report="Invalid type for parameter Key"),
        UnknownKeyError(value="x", param="y", choices=["z"]),
        MissingParametersError(object_name="PutObject", missing="Key"),
    ]
    for exc in refused:
        assert type(_translate(exc, "PutObject")) is PermanentError, exc
    assert isinstance(
        _translate(EndpointConnectionError(endpoint_url="http://x"), "PutObject"), RetryableError
    )


def test_tag_values_keep_only_what_s3_allows(stubbed: tuple[S3Store, Stubber]) -> None:
    # S3 tag values: letters, digits, spaces and + - = . _ : / @, at most 256 characters.
    store, stubber = stubbed
    stubber.add_response(
        "put_object_tagging",
        {},
        {
            "Bucket": BUCKET,
            "Key": KEY,
            "Tagging": {
                "TagSet": [
                    {"Key": "kie2s3:model", "Value": "bytedance/seedream-v4 x+y=z_1.0:@-m-sica-"},
                    {"Key": "kie2s3:family", "Value": "f" * 256},
                ]
            },
        },
    )
    store.set_tags(
        KEY, {"kie2s3:model": "bytedance/seedream-v4 x+y=z_1.0:@#música?", "kie2s3:family": "f" * 300}
    )
