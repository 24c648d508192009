"""The local AWS (devstack.moto_server) makes each request whole where AWS does: a DynamoDB request
(a strongly consistent read never sees an UpdateItem half applied, a condition holds until its write
is done) and an S3 conditional write (of two creates of one key with `If-None-Match: *`, one stores
its object and the other is refused).

moto's server answers each request in a thread of its own, with no lock. Its DynamoDB changes an
item in place, one SET after another: the soak (seed 3) had the events function read a task while a
worker's `copied` of its last file was half written (`state`, `bucket` and `key` set, `bytes` not
yet), and publish a `Task Archived` event with `bytes` null. Its S3 checks that a key is absent, then
writes: two creates of one key could both succeed, the second overwriting the first, where S3
answers the later one 412 PreconditionFailed (or 409 ConditionalRequestConflict while the first is
under way) — and kie2s3's exactly-once rests on these creates (adapters/s3_store.py). The server
these tests start takes SET_PAUSE_SECONDS more for every SET action and waits WRITE_PAUSE_SECONDS
between an S3 write's check and its write (slow_writes/sitecustomize.py), so that the second request
always meets the first under way, unless the server holds it until the first is done.
"""

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import boto3
import jsonschema
import pytest
from botocore.exceptions import ClientError
from devstack.aws import MotoServer

from kie2s3.adapters.ledger import Ledger
from kie2s3.logic.outbox import TASK_EVENTS, events_of
from kie2s3.models import BusEvent, CopyResult, FileItem, Outcome, TaskItem
from kie2s3.ports import FileChange, now_iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_s3 import S3Client

SLOW_WRITES = Path(__file__).resolve().parent / "slow_writes"
WRITE_PAUSE_SECONDS = 0.5
BUCKET = "archive-bucket"
ROOT = Path(__file__).resolve().parents[2]
SET_PAUSE_SECONDS = 0.1
TASK = "whole0123"
RESULT = CopyResult(
    bucket="archive-bucket",
    key=f"kie/{TASK}/01.png",
    bytes=307_200,
    sha256="ab" * 32,
    content_type="image/png",
)


@pytest.fixture(scope="module")
def slow_moto() -> Iterator[MotoServer]:
    """A moto server whose every DynamoDB SET and every stored S3 object is slow (slow_writes/)."""
    with MotoServer(
        environment={
            "PYTHONPATH": str(SLOW_WRITES),
            "KIE2S3_TEST_SET_PAUSE_SECONDS": str(SET_PAUSE_SECONDS),
            "KIE2S3_TEST_S3_WRITE_PAUSE_SECONDS": str(WRITE_PAUSE_SECONDS),
        }
    ) as moto:
        yield moto


def _credentials(moto: MotoServer) -> dict[str, str]:
    return {
        "endpoint_url": moto.endpoint_url,
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }


@pytest.fixture(scope="module")
def table(slow_moto: MotoServer) -> "Table":
    """A table with the tasks ledger's key schema and stream."""
    return boto3.resource("dynamodb", **_credentials(slow_moto)).create_table(
        TableName="tasks",
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


@pytest.fixture(scope="module")
def s3(slow_moto: MotoServer) -> "S3Client":
    """A bucket."""
    client = boto3.client("s3", **_credentials(slow_moto))
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def ledger(table: "Table") -> Ledger:
    return Ledger(table)


def _file(index: int, **fields: Any) -> FileItem:
    return FileItem(
        task_id=TASK,
        index=index,
        source=f"https://tempfile.aiquickdraw.com/p/{index}.png",
        kind="image",
        key=f"kie/{TASK}/{index:02d}.png",
        updated_at=now_iso(),
        **fields,
    )


def _first_task_event(ledger: Ledger, change: FileChange, writer: threading.Thread) -> BusEvent:
    """The events function's work for `change`, done again and again while `writer` runs: the first
    task event it builds (the task reads `copied` once the writer's file does), from a read that
    began while the writer's update was under way."""
    services: Any = SimpleNamespace(ledger=ledger)  # the outbox reads the ledger only
    while writer.is_alive():
        events = events_of(services, change, {})
        if task_events := [e for e in events if e.detail_type in TASK_EVENTS.values()]:
            return task_events[0]
    raise AssertionError("no read began while the update was under way and saw its file `copied`")


def test_local_dynamodb_a_read_never_sees_a_file_half_copied(ledger: Ledger) -> None:
    copied = _file(
        0, state="copied", bucket="archive-bucket", bytes=65_536, sha256="cd" * 32, content_type="image/png"
    )
    ledger.save_task(
        TaskItem(
            task_id=TASK, family="market", outcome=Outcome.SUCCESS, created_at=now_iso(), updated_at=now_iso()
        )
    )
    assert ledger.add_files([copied, _file(1)]) == 2
    # The worker records the task's last file `copied` while the events function handles the
    # stream record of the one before.
    writer = threading.Thread(target=ledger.mark_copied, args=(TASK, 1, RESULT))
    writer.start()
    try:
        event = _first_task_event(ledger, FileChange(TASK, "pending", copied), writer)
    finally:
        writer.join()
    detail = json.loads(event.detail)
    schema = json.loads((ROOT / "events" / "schemas" / "task-archived.json").read_text())
    errors = [
        e.message
        for e in jsonschema.Draft202012Validator(schema).iter_errors(
            {"source": "kie2s3", "detail-type": event.detail_type, "detail": detail}
        )
    ]
    assert errors == [], detail
    assert [(f["index"], f["bytes"], f["sha256"]) for f in detail["files"]] == [
        (0, 65_536, "cd" * 32),
        (1, RESULT.bytes, RESULT.sha256),
    ]


def test_local_dynamodb_a_condition_holds_until_its_write_is_done(table: "Table") -> None:
    # The first write takes the item (four SETs before `owner`); the second, sent while the first is
    # under way, must find it taken, as DynamoDB answers one conditional write after the other.
    def take(owner: str, answers: dict[str, str]) -> None:
        try:
            table.update_item(
                Key={"pk": "taken0123", "sk": "TASK"},
                UpdateExpression="SET a1 = :o, a2 = :o, a3 = :o, a4 = :o, #owner = :o",
                ConditionExpression="attribute_not_exists(#owner)",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":o": owner},
            )
            answers[owner] = "taken"
        except table.meta.client.exceptions.ConditionalCheckFailedException:
            answers[owner] = "refused"

    answers: dict[str, str] = {}
    first = threading.Thread(target=take, args=("first", answers))
    first.start()
    time.sleep(2 * SET_PAUSE_SECONDS)  # the first write's condition checked, its SETs under way
    take("second", answers)
    first.join()
    assert answers == {"first": "taken", "second": "refused"}
    item = table.get_item(Key={"pk": "taken0123", "sk": "TASK"}, ConsistentRead=True)["Item"]
    assert {k: v for k, v in item.items() if k not in ("pk", "sk")} == dict.fromkeys(
        ("a1", "a2", "a3", "a4", "owner"), "first"
    )


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
