"""The deploy-time choices on every S3 request (KMS key, storage class) and the stale-upload pass.

The exact requests are the contract (SSE-KMS with a Bucket Key on every write, the storage class on
archived files only, which uploads are aborted): botocore's Stubber.
"""

import base64
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber

from kie2s3.adapters.s3_store import S3Store
from kie2s3.errors import RetryableError

BUCKET = "team-media-archive"
KEY = "kie/t1/00.mp4"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SSE_KMS = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": KEY_ARN, "BucketKeyEnabled": True}
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def stubber() -> Iterator[Stubber]:
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubbed:
        yield stubbed
        stubbed.assert_no_pending_responses()


def _store(stubber: Stubber, **options: str) -> S3Store:
    return S3Store(stubber.client, BUCKET, **options)  # type: ignore[arg-type]


def _put_request(body: bytes, **extra: object) -> dict[str, object]:
    return {
        "Bucket": BUCKET,
        "Key": KEY,
        "Body": body,
        "ContentType": "image/png",
        "ChecksumAlgorithm": "SHA256",
        "ChecksumSHA256": base64.b64encode(hashlib.sha256(body).digest()).decode(),
        "Metadata": {},
        "IfNoneMatch": "*",
        **extra,
    }


def _put(store: S3Store, body: bytes) -> None:
    store.put_new(
        KEY, body, content_type="image/png", checksum_sha256=hashlib.sha256(body).digest(), metadata={}
    )


def test_put_new_asks_for_the_kms_key_and_a_bucket_key(stubber: Stubber) -> None:
    stubber.add_response("put_object", {}, _put_request(b"png", **SSE_KMS))
    _put(_store(stubber, kms_key_arn=KEY_ARN), b"png")


def test_put_new_sets_the_storage_class(stubber: Stubber) -> None:
    stubber.add_response("put_object", {}, _put_request(b"png", StorageClass="GLACIER_IR"))
    _put(_store(stubber, storage_class="GLACIER_IR"), b"png")


def test_put_new_with_the_defaults_sends_what_it_always_sent(stubber: Stubber) -> None:
    # No key: the bucket's default encryption (SSE-S3). STANDARD: S3's default, not sent.
    stubber.add_response("put_object", {}, _put_request(b"png"))
    _put(_store(stubber, kms_key_arn="", storage_class="STANDARD"), b"png")


def test_raw_callbacks_are_encrypted_with_the_key_but_stay_standard(stubber: Stubber) -> None:
    body = b'{"code": 200}'
    request = _put_request(body, **SSE_KMS)
    request.update(Key="kie/t1/callbacks/1-ab.json", ContentType="application/json")
    stubber.add_response("put_object", {}, request)
    _store(stubber, kms_key_arn=KEY_ARN, storage_class="STANDARD_IA").put_raw(
        "kie/t1/callbacks/1-ab.json", body
    )


def test_multipart_upload_asks_for_the_key_and_the_storage_class(stubber: Stubber) -> None:
    stubber.add_response(
        "create_multipart_upload",
        {"UploadId": "u1"},
        {
            "Bucket": BUCKET,
            "Key": KEY,
            "ContentType": "video/mp4",
            "Metadata": {},
            "ChecksumAlgorithm": "CRC32",
            "StorageClass": "INTELLIGENT_TIERING",
            **SSE_KMS,
        },
    )
    store = _store(stubber, kms_key_arn=KEY_ARN, storage_class="INTELLIGENT_TIERING")
    upload = store.multipart_upload(KEY, content_type="video/mp4", metadata={})
    assert upload.create() == "u1"
    # UploadPart and CompleteMultipartUpload carry no SSE-KMS headers: S3 refuses them there.
    stubber.add_response("abort_multipart_upload", {}, {"Bucket": BUCKET, "Key": KEY, "UploadId": "u1"})
    upload.abort()


# ---------------------------------------------------------------------------- stale uploads


def _upload(key: str, upload_id: str, age: timedelta) -> dict[str, object]:
    return {"Key": key, "UploadId": upload_id, "Initiated": NOW - age}


def test_abort_stale_uploads_aborts_only_those_older_than_the_cutoff(stubber: Stubber) -> None:
    stubber.add_response(
        "list_multipart_uploads",
        {
            "Uploads": [
                _upload("kie/a/00.mp4", "old", timedelta(days=2)),
                _upload("kie/b/00.mp4", "young", timedelta(hours=3)),
            ],
            "IsTruncated": False,
        },
        {"Bucket": BUCKET, "Prefix": "kie/"},
    )
    stubber.add_response(
        "abort_multipart_upload", {}, {"Bucket": BUCKET, "Key": "kie/a/00.mp4", "UploadId": "old"}
    )
    aborted = _store(stubber).abort_stale_uploads("kie/", NOW - timedelta(days=1))
    assert aborted == ["kie/a/00.mp4"]


def test_abort_stale_uploads_reads_every_page(stubber: Stubber) -> None:
    stubber.add_response(
        "list_multipart_uploads",
        {
            "Uploads": [_upload("kie/a/00.mp4", "u1", timedelta(days=3))],
            "IsTruncated": True,
            "NextKeyMarker": "kie/a/00.mp4",
            "NextUploadIdMarker": "u1",
        },
        {"Bucket": BUCKET, "Prefix": "kie/"},
    )
    stubber.add_response(
        "abort_multipart_upload", {}, {"Bucket": BUCKET, "Key": "kie/a/00.mp4", "UploadId": "u1"}
    )
    stubber.add_response(
        "list_multipart_uploads",
        {"Uploads": [_upload("kie/b/01.png", "u2", timedelta(days=2))], "IsTruncated": False},
        {"Bucket": BUCKET, "Prefix": "kie/", "KeyMarker": "kie/a/00.mp4", "UploadIdMarker": "u1"},
    )
    stubber.add_response(
        "abort_multipart_upload", {}, {"Bucket": BUCKET, "Key": "kie/b/01.png", "UploadId": "u2"}
    )
    aborted = _store(stubber).abort_stale_uploads("kie/", NOW - timedelta(days=1))
    assert aborted == ["kie/a/00.mp4", "kie/b/01.png"]


def test_abort_stale_uploads_skips_one_that_ended_meanwhile(stubber: Stubber) -> None:
    stubber.add_response(
        "list_multipart_uploads",
        {"Uploads": [_upload("kie/a/00.mp4", "gone", timedelta(days=2))], "IsTruncated": False},
        {"Bucket": BUCKET, "Prefix": "kie/"},
    )
    stubber.add_client_error("abort_multipart_upload", "NoSuchUpload", http_status_code=404)
    assert _store(stubber).abort_stale_uploads("kie/", NOW - timedelta(days=1)) == []


def test_abort_stale_uploads_never_lists_the_whole_bucket(stubber: Stubber) -> None:
    # An empty prefix would reach uploads that are not kie2s3's (a bucket others use too).
    with pytest.raises(ValueError, match="prefix"):
        _store(stubber).abort_stale_uploads("", NOW - timedelta(days=1))


def test_abort_stale_uploads_listing_failure_is_retryable(stubber: Stubber) -> None:
    stubber.add_client_error("list_multipart_uploads", "SlowDown", http_status_code=503)
    with pytest.raises(RetryableError):
        _store(stubber).abort_stale_uploads("kie/", NOW - timedelta(days=1))
