"""The local DynamoDB (devstack.moto_server) runs each request whole, as DynamoDB does: a strongly
consistent read never sees an UpdateItem half applied, and a condition holds until its write is done.

moto's server changes an item in place, one SET after another, while it answers other requests in
other threads. The soak (seed 3) had the events function read a task while a worker's `copied` of
its last file was half written (`state`, `bucket` and `key` set, `bytes` not yet): it published a
`Task Archived` event with `bytes` null. The server these tests start takes SET_PAUSE_SECONDS more
for every SET action (slow_dynamodb/sitecustomize.py), so that the read always meets the update
under way, unless the server holds it until the update is done.
"""

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import boto3
import jsonschema
import pytest
from devstack.aws import MotoServer

from kie2s3.adapters.ledger import Ledger
from kie2s3.logic.outbox import TASK_EVENTS, events_of
from kie2s3.models import BusEvent, CopyResult, FileItem, Outcome, TaskItem
from kie2s3.ports import FileChange, now_iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

ROOT = Path(__file__).resolve().parents[2]
SLOW_SETS = Path(__file__).resolve().parent / "slow_dynamodb"
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
def table() -> Iterator["Table"]:
    """A table with the tasks ledger's key schema and stream, on a moto server whose every SET is slow."""
    with MotoServer(
        environment={"PYTHONPATH": str(SLOW_SETS), "KIE2S3_TEST_SET_PAUSE_SECONDS": str(SET_PAUSE_SECONDS)}
    ) as moto:
        dynamodb = boto3.resource(
            "dynamodb",
            endpoint_url=moto.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        table = dynamodb.create_table(
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
        yield table


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
