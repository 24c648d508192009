"""Deploy-time choices against the local stack (issue #16): the user's bucket, key, storage class, token mode.

Each test runs the real handler with the environment the template gives for those values. One file
of one part (a single create-only PUT) and one of two parts (the multipart path) per test.
"""

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from devstack.aws import provision
from devstack.callbacks import market_body
from devstack.kie_emulator import SyntheticFile
from devstack.lambda_runtime import SqsPoller, function_environment
from devstack.stack import CALLBACK_TOKEN, Stack, local_environment
from devstack.template import load_template
from tests.integration.conftest import abort_stale_uploads, post_callback, serve, task_document, without_links

from kie2s3.handlers.wiring import get_services

# A file of one part and one of two (parts are 8 MiB): both ways an object is written.
FILES = [(".png", 64 * 1024), (".mp4", 9 * 1024**2)]


def _archive(
    stack: Stack, task_id: str, bucket: str, *, queued: bool = False
) -> tuple[dict[str, SyntheticFile], list[dict[str, Any]]]:
    """Archive a task's two files through a signed callback (`queued`: then by the copy worker, as
    deployed); the sources and the status document's files."""
    served = serve(stack, task_id, FILES)
    status, doc = post_callback(market_body(task_id, list(served)), task_id)
    assert status == 200, doc
    if queued:
        _copy_worker(stack).drain()
    doc = task_document(task_id)
    assert doc["state"] == "copied", doc
    assert {f["bucket"] for f in doc["files"]} == {bucket}
    assert [f["sha256"] for f in doc["files"]] == [s.sha256_hex() for s in served.values()]
    return served, doc["files"]


def _copy_worker(stack: Stack) -> SqsPoller:
    """Lambda's SQS mapping on the copy queue of the function environment in force (the stack's, or
    one a test provisioned beside it)."""
    sqs, url = stack.client("sqs"), os.environ["COPY_QUEUE_URL"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return SqsPoller(sqs=sqs, queue_url=url, queue_arn=arn, retry_delay=0)


def _raw_callback_keys(stack: Stack, bucket: str, task_id: str) -> list[str]:
    listing = stack.client("s3").list_objects_v2(Bucket=bucket, Prefix=f"kie/{task_id}/callbacks/")
    keys = [o["Key"] for o in listing.get("Contents", [])]
    assert keys, "the callback's raw body is archived"
    return keys


# ---------------------------------------------------------------------------- the user's KMS key


@pytest.fixture
def kms_key(stack: Stack) -> str:
    arn: str = stack.client("kms").create_key(Description="kie2s3 archive key")["KeyMetadata"]["Arn"]
    return arn


@pytest.fixture
def kms_mode(stack: Stack, kms_key: str) -> Iterator[Stack]:
    """The stack deployed with KmsKeyArn: the callback queues its copies, the copy worker runs them."""
    with function_environment({**stack.env, "KMS_KEY_ARN": kms_key}):
        yield stack


def test_kms_key_encrypts_every_object_on_a_bucket_whose_default_is_sse_s3(
    kms_mode: Stack, kms_key: str, task_id: str
) -> None:
    s3 = kms_mode.client("s3")
    [default] = s3.get_bucket_encryption(Bucket=kms_mode.bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert default["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"  # the request must ask
    served, files = _archive(kms_mode, task_id, kms_mode.bucket, queued=True)
    for file, source in zip(files, served.values(), strict=True):
        head = s3.head_object(Bucket=kms_mode.bucket, Key=file["key"])
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", kms_key), file["key"]
        assert head["ContentLength"] == source.size
        stored = s3.get_object(Bucket=kms_mode.bucket, Key=file["key"])["Body"].read()
        assert stored == source.read(0, source.size)
    single = s3.head_object(Bucket=kms_mode.bucket, Key=files[0]["key"])
    assert single["BucketKeyEnabled"] is True  # moto keeps no Bucket Key for a multipart upload
    for key in _raw_callback_keys(kms_mode, kms_mode.bucket, task_id):
        head = s3.head_object(Bucket=kms_mode.bucket, Key=key)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", kms_key), key


def test_without_a_kms_key_objects_take_the_bucket_default(inline_mode: Stack, task_id: str) -> None:
    s3 = inline_mode.client("s3")
    _, files = _archive(inline_mode, task_id, inline_mode.bucket)
    for file in files:
        head = s3.head_object(Bucket=inline_mode.bucket, Key=file["key"])
        assert "SSEKMSKeyId" not in head


# ---------------------------------------------------------------------------- storage class


@pytest.fixture
def glacier_ir(stack: Stack) -> Iterator[Stack]:
    with function_environment({**stack.env, "COPY_MODE": "inline", "STORAGE_CLASS": "GLACIER_IR"}):
        yield stack


def test_storage_class_applies_to_archived_files_not_to_raw_callbacks(
    glacier_ir: Stack, task_id: str
) -> None:
    s3 = glacier_ir.client("s3")
    _, files = _archive(glacier_ir, task_id, glacier_ir.bucket)
    classes = {
        f["key"]: s3.head_object(Bucket=glacier_ir.bucket, Key=f["key"]).get("StorageClass") for f in files
    }
    assert set(classes.values()) == {"GLACIER_IR"}, classes
    for key in _raw_callback_keys(glacier_ir, glacier_ir.bucket, task_id):
        # S3 names no class for STANDARD objects.
        assert s3.head_object(Bucket=glacier_ir.bucket, Key=key).get("StorageClass", "STANDARD") == "STANDARD"


def test_storage_class_keeps_a_repeated_callback_exactly_once(glacier_ir: Stack, task_id: str) -> None:
    served, files = _archive(glacier_ir, task_id, glacier_ir.bucket)
    requests = dict(glacier_ir.emulator.file_requests)
    status, _ = post_callback(market_body(task_id, list(served)), task_id)
    assert status == 200
    assert without_links(task_document(task_id)["files"]) == without_links(files)
    assert {name: glacier_ir.emulator.file_requests[name] for name in requests} == requests


# ---------------------------------------------------------------------------- bring your own bucket


@pytest.fixture
def existing_bucket(stack: Stack) -> Iterator[tuple[Stack, str]]:
    """A bucket of the user's (default SSE-S3, no lifecycle rule), and a stack deployed to use it."""
    bucket = f"team-media-{uuid.uuid4().hex[:12]}"
    s3 = stack.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    stack_name = f"byo-{uuid.uuid4().hex[:8]}"
    local = provision(
        stack.moto.endpoint_url,
        load_template(),
        stack_name=stack_name,
        parameter_overrides={**stack.aws.parameters, "ExistingBucketName": bucket},
        environment=local_environment("queue"),
    )
    assert "ArchiveBucket" not in local.physical_ids
    assert local.env["BUCKET_NAME"] == bucket
    with function_environment(local.env):
        yield stack, bucket


def test_existing_bucket_gets_the_files_and_no_bucket_is_created(
    existing_bucket: tuple[Stack, str], task_id: str
) -> None:
    stack, bucket = existing_bucket
    before = {b["Name"] for b in stack.client("s3").list_buckets()["Buckets"]}
    served, files = _archive(stack, task_id, bucket, queued=True)
    assert {b["Name"] for b in stack.client("s3").list_buckets()["Buckets"]} == before
    listing = stack.client("s3").list_objects_v2(Bucket=bucket, Prefix=f"kie/{task_id}/")
    stored = {o["Key"]: o["Size"] for o in listing["Contents"] if "/callbacks/" not in o["Key"]}
    assert stored == {f["key"]: s.size for f, s in zip(files, served.values(), strict=True)}
    assert _raw_callback_keys(stack, bucket, task_id)


def test_existing_bucket_stale_uploads_under_the_prefix_are_aborted(
    existing_bucket: tuple[Stack, str], task_id: str
) -> None:
    # The bucket has no abort-incomplete-multipart rule: the reconciler aborts what a killed copy left.
    stack, bucket = existing_bucket
    s3 = stack.client("s3")
    ours = s3.create_multipart_upload(Bucket=bucket, Key=f"kie/{task_id}/00.mp4")["UploadId"]
    theirs = s3.create_multipart_upload(Bucket=bucket, Key=f"their-app/{task_id}.mov")["UploadId"]
    aborted = abort_stale_uploads(get_services(), datetime.now(UTC) + timedelta(days=2))
    assert aborted == [f"kie/{task_id}/00.mp4"]
    left = {u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])}
    assert ours not in left
    assert theirs in left  # never an upload outside kie2s3's prefix


def test_stale_uploads_are_left_alone_without_a_prefix(stack: Stack, task_id: str) -> None:
    # Without a prefix, kie2s3 cannot tell its uploads from others': the bucket's own rule must do it.
    s3 = stack.client("s3")
    upload = s3.create_multipart_upload(Bucket=stack.bucket, Key=f"{task_id}/00.mp4")["UploadId"]
    with function_environment({**stack.env, "COPY_MODE": "inline", "OBJECT_PREFIX": ""}):
        assert abort_stale_uploads(get_services(), datetime.now(UTC) + timedelta(days=2)) == []
    left = s3.list_multipart_uploads(Bucket=stack.bucket, Prefix=task_id).get("Uploads", [])
    assert [u["UploadId"] for u in left] == [upload]
    s3.abort_multipart_upload(Bucket=stack.bucket, Key=f"{task_id}/00.mp4", UploadId=upload)


# ---------------------------------------------------------------------------- token mode


@pytest.fixture
def token_mode(stack: Stack) -> Iterator[Stack]:
    """KieWebhookHmacSecretId=none, as typed at `sam deploy --guided`'s prompt, and a callback token."""
    env = {
        **stack.env,
        "COPY_MODE": "inline",
        "KIE_WEBHOOK_HMAC_SECRET": "none",
        "CALLBACK_TOKEN_SECRET": stack.aws.parameters["CallbackTokenSecretId"],
    }
    with function_environment(env):
        yield stack


def test_token_mode_with_hmac_none_accepts_the_token(token_mode: Stack, task_id: str) -> None:
    served = serve(token_mode, task_id, FILES[:1])
    status, doc = post_callback(
        market_body(task_id, list(served)), task_id, hmac_key=None, query={"token": CALLBACK_TOKEN}
    )
    assert status == 200, doc
    assert task_document(task_id)["state"] == "copied"


def test_token_mode_with_hmac_none_refuses_a_missing_or_wrong_token(token_mode: Stack, task_id: str) -> None:
    served = serve(token_mode, task_id, FILES[:1])
    body = market_body(task_id, list(served))
    assert post_callback(body, task_id, hmac_key=None)[0] == 401
    assert post_callback(body, task_id, hmac_key=None, query={"token": "guess"})[0] == 401


# ---------------------------------------------------------------------------- Object Lock


@pytest.fixture
def locked_stack(stack: Stack) -> Iterator[tuple[Stack, str]]:
    """A stack whose created bucket has Object Lock, 1 day in governance mode."""
    local = provision(
        stack.moto.endpoint_url,
        load_template(),
        stack_name=f"lock-{uuid.uuid4().hex[:8]}",
        parameter_overrides={**stack.aws.parameters, "ObjectLockRetentionDays": "1"},
        environment=local_environment("inline"),
    )
    with function_environment(local.env):
        yield stack, local.env["BUCKET_NAME"]


def test_object_lock_bucket_is_versioned_and_locks_every_archived_object(
    locked_stack: tuple[Stack, str], task_id: str
) -> None:
    stack, bucket = locked_stack
    s3 = stack.client("s3")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    assert (lock["Rule"]["DefaultRetention"]["Mode"], lock["Rule"]["DefaultRetention"]["Days"]) == (
        "GOVERNANCE",
        1,
    )
    _, files = _archive(stack, task_id, bucket)
    # moto applies a bucket's default retention to PutObject only, not to a completed multipart upload
    # (S3 applies it to every new object version): the single-part file and the raw callbacks.
    for key in [files[0]["key"], *_raw_callback_keys(stack, bucket, task_id)]:
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ObjectLockMode"] == "GOVERNANCE", key
        assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC), key
