"""The local S3 (devstack.moto_server) makes each conditional write whole, as S3 does: of two creates
of one key with `If-None-Match: *`, one stores its object and the other is refused.

kie2s3's exactly-once rests on these creates (adapters/s3_store.py): a duplicate copy must find the
key taken, never overwrite it. moto's server checks that the key is absent, then writes, with no
lock, while it answers other requests in other threads: two creates of one key could both succeed,
the second overwriting the first. S3 answers the later one 412 PreconditionFailed (or 409
ConditionalRequestConflict while the first is under way). The server these tests start waits
WRITE_PAUSE_SECONDS between a write's check and its write (slow_s3/sitecustomize.py), so that the
second create always arrives in between, unless the server holds it until the first is done.
"""

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.exceptions import ClientError
from devstack.aws import MotoServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SLOW_WRITES = Path(__file__).resolve().parent / "slow_s3"
WRITE_PAUSE_SECONDS = 0.5
BUCKET = "archive-bucket"


@pytest.fixture(scope="module")
def s3() -> Iterator["S3Client"]:
    """A bucket on a moto server whose every stored object is slow to be written."""
    with MotoServer(
        environment={
            "PYTHONPATH": str(SLOW_WRITES),
            "KIE2S3_TEST_S3_WRITE_PAUSE_SECONDS": str(WRITE_PAUSE_SECONDS),
        }
    ) as moto:
        client = boto3.client(
            "s3",
            endpoint_url=moto.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_bucket(Bucket=BUCKET)
        yield client


def _answer(create: Callable[[], object]) -> str:
    try:
        create()
    except ClientError as error:
        return str(error.response["Error"]["Code"])
    return "stored"


def _race(first: Callable[[], object], second: Callable[[], object]) -> tuple[str, str]:
    """The answers to two creates, the second sent while the first is between its check and its write."""
    answers: dict[str, str] = {}
    thread = threading.Thread(target=lambda: answers.setdefault("first", _answer(first)))
    thread.start()
    time.sleep(WRITE_PAUSE_SECONDS / 2)  # the first create's condition checked, its write under way
    answers["second"] = _answer(second)
    thread.join()
    return answers["first"], answers["second"]


def _refused(answer: str) -> bool:
    return answer in ("PreconditionFailed", "ConditionalRequestConflict")


def test_local_s3_two_put_object_creates_of_one_key_store_one(s3: "S3Client") -> None:
    key = "kie/whole0123/00.png"

    def create(body: bytes) -> Callable[[], object]:
        return lambda: s3.put_object(Bucket=BUCKET, Key=key, Body=body, IfNoneMatch="*")

    first, second = _race(create(b"first"), create(b"second"))
    assert first == "stored"
    assert _refused(second), second
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"first"


def test_local_s3_two_multipart_creates_of_one_key_store_one(s3: "S3Client") -> None:
    key = "kie/whole0123/01.mp4"

    def upload(body: bytes) -> Callable[[], object]:
        """A multipart upload of `body` to the key, its parts in; the call completes it create-only."""
        upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        etag = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=body)["ETag"]
        return lambda: s3.complete_multipart_upload(
            Bucket=BUCKET,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
            IfNoneMatch="*",
        )

    first, second = _race(upload(b"first"), upload(b"second"))
    assert first == "stored"
    assert _refused(second), second
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"first"
