"""Rotating the webhook key without refusing callbacks in flight; taking a task down (issue #16, item 9)."""

import io
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from devstack.callbacks import market_body, serve_result_files
from devstack.lambda_runtime import function_environment, http_event
from devstack.stack import Stack
from devstack.takedown import copy_guard, takedown
from tests.integration.conftest import (
    Outbox,
    archived_files,
    objects_under,
    post_callback,
    reconcile,
    send,
    serve,
    task_document,
)
from tests.integration.test_events import _distinct, _of

from kie2s3.adapters.ledger import TAKEN_DOWN, Ledger
from kie2s3.handlers.http import MAX_BODY_BYTES
from kie2s3.handlers.wiring import get_services
from kie2s3.models import MAX_URL_CHARS, FileItem, Outcome, TaskItem
from kie2s3.ports import now_iso

MIB = 1024**2


@pytest.fixture
def rotating_key(stack: Stack) -> Iterator[tuple[Stack, str]]:
    """A webhook HMAC secret of its own (the session's is shared), holding "key-1", and a function
    that accepts the previous version for 3 s after a rotation."""
    secret_id = f"kie2s3/rotating-{uuid.uuid4().hex[:8]}"
    stack.client("secretsmanager").create_secret(Name=secret_id, SecretString="key-1")
    env = {**stack.env, "KIE_WEBHOOK_HMAC_SECRET": secret_id, "SECRET_ROTATION_WINDOW_SECONDS": "3"}
    with function_environment(env):
        yield stack, secret_id


def _callback(task_id: str, key: str) -> int:
    body = market_body(task_id, [f"https://tempfile.aiquickdraw.com/p/{task_id}.png"], state="fail")
    return post_callback(body, task_id, hmac_key=key)[0]


def test_rotation_previous_key_is_accepted_within_the_window(rotating_key: tuple[Stack, str]) -> None:
    # Secrets Manager's own AWSCURRENT/AWSPREVIOUS labels and CreatedDate, through the real adapter;
    # the window's end is a unit test of receive, at a fixed clock (no waiting here).
    stack, secret_id = rotating_key
    # Rotate: "key-2" becomes AWSCURRENT, "key-1" AWSPREVIOUS.
    stack.client("secretsmanager").put_secret_value(SecretId=secret_id, SecretString="key-2")
    assert _callback(uuid.uuid4().hex, "key-2") == 200
    assert _callback(uuid.uuid4().hex, "key-1") == 200  # a callback signed before the rotation
    assert _callback(uuid.uuid4().hex, "key-0") == 401  # never a key older than the previous one


def test_rotation_new_key_is_accepted_though_the_old_one_is_cached(
    rotating_key: tuple[Stack, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """kie.ai signs with the new key as soon as it is made: a signature no cached version matches
    makes the function read the secret again (at most every REFRESH_SECRETS_AFTER_SECONDS)."""
    from kie2s3.logic import receive

    stack, secret_id = rotating_key
    monkeypatch.setattr(receive, "REFRESH_SECRETS_AFTER_SECONDS", 0.0)
    assert _callback(uuid.uuid4().hex, "key-1") == 200  # the cache holds key-1
    stack.client("secretsmanager").put_secret_value(SecretId=secret_id, SecretString="key-2")
    assert _callback(uuid.uuid4().hex, "key-2") == 200


# -- takedown ---------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_callback_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Takedowns here race no callback: they wait for none (tests/unit/test_logic_takedown.py races one)."""
    from kie2s3.logic import takedown

    monkeypatch.setattr(takedown, "CALLBACK_GRACE_SECONDS", 0.0)


def _post_copies(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return send(http_event("POST", "/copies", body=body))


def _ledger_items(stack: Stack, task_id: str) -> list[str]:
    """The sort keys of every item of the task (every page of them)."""
    pages = (
        stack.client("dynamodb")
        .get_paginator("query")
        .paginate(
            TableName=stack.env["TASKS_TABLE"],
            KeyConditionExpression="pk = :t",
            ExpressionAttributeValues={":t": {"S": task_id}},
            ProjectionExpression="sk",
        )
    )
    return sorted(i["sk"]["S"] for page in pages for i in page["Items"])


def _take_down(stack: Stack, task_id: str, bucket: str | None = None, **options: Any) -> tuple[int, str]:
    """`make takedown`'s work against the local stack."""
    out = io.StringIO()
    guard = copy_guard(stack.client("dynamodb"), stack.env["IDEMPOTENCY_TABLE"], stack.env["TASKS_TABLE"])
    status = takedown(
        stack.client("s3"),
        stack.tasks_table(),
        guard,
        bucket or stack.bucket,
        "kie/",
        task_id,
        out=out,
        **options,
    )
    return status, out.getvalue()


def test_takedown_removes_objects_and_ledger_items_and_nothing_comes_back(
    inline_mode: Stack, task_id: str
) -> None:
    served = serve(inline_mode, task_id, [(".png", 4096), (".mp4", 9 * MIB)])
    body = market_body(task_id, list(served))
    assert post_callback(body, task_id)[0] == 200
    assert len(archived_files(inline_mode, task_id)) == 2
    assert objects_under(inline_mode, f"kie/{task_id}/callbacks/")

    status, report = _take_down(inline_mode, task_id)

    assert status == 0, report
    assert objects_under(inline_mode, f"kie/{task_id}/") == {}
    assert f"kie/{task_id}/00.png" in report
    # The task's item is left, marked taken down, so no later delivery archives it again, and the
    # keys its files had (a second takedown finds them, should Object Lock have kept a version).
    assert _ledger_items(inline_mode, task_id) == ["TAKEDOWN#00000", "TASK"]
    doc = task_document(task_id)
    assert (doc["state"], doc["files"]) == ("ignored", [])
    assert "taken down" in doc["reason"]

    assert post_callback(body, task_id)[0] == 200  # kie.ai's retry, a duplicate
    assert _post_copies({"taskId": task_id, "urls": list(served)})[0] == 200
    assert objects_under(inline_mode, f"kie/{task_id}/") == {}
    assert _ledger_items(inline_mode, task_id) == ["TAKEDOWN#00000", "TASK"]
    assert task_document(task_id)["state"] == "ignored"


# Long sources make large file items (a character of four UTF-8 bytes is twelve in the canonical
# source an item stores): this many fill more than one query page (1 MB of whole items).
PAGE_FILLING_FILES = 24
WIDE = "\U0001d4b3"
# As many of them as one request body holds (each is 48 KB in JSON's \u escapes).
LONG_SOURCES_PER_REQUEST = MAX_BODY_BYTES // (12 * MAX_URL_CHARS + 256)


def _long_sources(task_id: str, count: int) -> list[str]:
    head = f"https://tempfile.aiquickdraw.com/p/{task_id}/"
    return [f"{head}{n:03d}-{WIDE * (MAX_URL_CHARS - len(head) - 8)}.png" for n in range(count)]


def test_takedown_of_a_task_past_one_query_page_leaves_nothing_and_nothing_comes_back(
    queue_mode: Stack, task_id: str
) -> None:
    urls = _long_sources(task_id, PAGE_FILLING_FILES)
    serve_result_files(queue_mode.emulator, urls, size=2048)
    for start in range(0, len(urls), LONG_SOURCES_PER_REQUEST):  # every file's copy job queued
        assert (
            _post_copies({"taskId": task_id, "urls": urls[start : start + LONG_SOURCES_PER_REQUEST]})[0]
            == 202
        )
    page = queue_mode.client("dynamodb").query(
        TableName=queue_mode.env["TASKS_TABLE"],
        KeyConditionExpression="pk = :t",
        ExpressionAttributeValues={":t": {"S": task_id}},
        ProjectionExpression="sk",
    )
    assert "LastEvaluatedKey" in page, "the task's items fit one page: the test proves nothing"

    status, report = _take_down(queue_mode, task_id)

    assert status == 0, report
    assert _ledger_items(queue_mode, task_id) == ["TAKEDOWN#00000", "TASK"]
    assert f"ledger items removed: {2 * PAGE_FILLING_FILES}" in report
    # What could bring it back: the jobs queued before the takedown, kie.ai's retry of a callback,
    # the reconciler past every threshold, and POST /copies. None stores anything.
    queue_mode.poller().drain()
    assert post_callback(market_body(task_id, urls[:3]), task_id)[0] == 200
    for later in (timedelta(minutes=31), timedelta(days=15)):
        reconcile(get_services(), now=datetime.now(UTC) + later)
    queue_mode.poller().drain()
    assert _post_copies({"taskId": task_id, "urls": urls[:3]})[0] == 202
    queue_mode.poller().drain()
    assert objects_under(queue_mode, f"kie/{task_id}/") == {}
    assert _ledger_items(queue_mode, task_id) == ["TAKEDOWN#00000", "TASK"]
    assert task_document(task_id)["state"] == "ignored"


def test_takedown_waits_out_a_copy_under_way_and_says_so_in_one_event(outbox: Outbox, task_id: str) -> None:
    from devstack.kie_emulator import FileFault

    stack = outbox.stack
    ((url, source),) = serve(stack, task_id, [(".mp4", 256 * 1024)]).items()
    stack.emulator.inject_file_fault(source.name, FileFault.stall(64 * 1024, 3.0))
    assert post_callback(market_body(task_id, [url]), task_id)[0] == 200
    copying = threading.Thread(target=stack.poller().poll_once)  # the copy worker, mid-download
    copying.start()
    guard = get_services().guard
    deadline = time.monotonic() + 10
    while guard.in_flight(task_id, [0]) is None:
        assert time.monotonic() < deadline, "the copy never started"
        time.sleep(0.05)

    status, report = _take_down(stack, task_id)
    copying.join(timeout=30)

    assert status == 0, report
    assert "waited" in report  # for the copy, which stored its object meanwhile: removed after it
    assert objects_under(stack, f"kie/{task_id}/") == {}
    assert _ledger_items(stack, task_id) == ["TAKEDOWN#00000", "TASK"]
    events = _distinct(_of(outbox.drain(), task_id))
    assert [(e["detail-type"], e["detail"]["reason"], e["detail"]["files"]) for e in events.values()] == [
        ("Task Ignored", TAKEN_DOWN, [])
    ]


def test_takedown_keeps_any_number_of_keys_within_the_item_size_limit(stack: Stack, task_id: str) -> None:
    ledger = Ledger(stack.tasks_table())
    now = now_iso()
    ledger.save_task(
        TaskItem(task_id=task_id, family="market", outcome=Outcome.SUCCESS, created_at=now, updated_at=now)
    )
    # 1,200 keys of 1,000 bytes: three times what one 400 KB item could hold.
    keys = [f"kie/{task_id}/{n:04d}-{'k' * 950}.png" for n in range(1200)]

    assert ledger.mark_taken_down(task_id, keys)
    found = ledger.get(task_id)
    assert found is not None
    assert found[0].taken_down_keys == sorted(keys)
    assert ledger.mark_taken_down(task_id, keys[:2])  # a later takedown keeps what it is given
    found = ledger.get(task_id)
    assert found is not None
    assert found[0].taken_down_keys == keys[:2]
    assert _ledger_items(stack, task_id) == ["TAKEDOWN#00000", "TASK"]


def test_takedown_fences_file_items_a_plan_writes_after_it(stack: Stack, task_id: str) -> None:
    """A plan that read the task before the takedown writes its file items after it: DynamoDB
    refuses them (the write checks the fence), however many; 50 at once fit the transactions."""
    ledger = Ledger(stack.tasks_table())
    now = now_iso()
    ledger.save_task(
        TaskItem(task_id=task_id, family="market", outcome=Outcome.SUCCESS, created_at=now, updated_at=now)
    )
    items = [
        FileItem(
            task_id=task_id,
            index=n,
            source=f"https://tempfile.aiquickdraw.com/p/{task_id}-{n}.png",
            kind="image",
            key=f"kie/{task_id}/{n:02d}.png",
            updated_at=now,
        )
        for n in range(100)
    ]
    assert ledger.add_files(items[:50]) == 50

    assert ledger.mark_taken_down(task_id, [i.key for i in items[:50]])
    assert ledger.add_files(items[50:]) == 0
    assert ledger.delete_files(task_id) == 100
    assert ledger.add_files(items[50:]) == 0
    assert _ledger_items(stack, task_id) == ["TAKEDOWN#00000", "TASK"]


def test_takedown_reason_outlives_a_reconciler_closing_the_task(stack: Stack, task_id: str) -> None:
    ledger = Ledger(stack.tasks_table())
    now = now_iso()
    ledger.save_task(
        TaskItem(task_id=task_id, family="market", outcome=Outcome.NOT_FINAL, created_at=now, updated_at=now)
    )
    assert ledger.mark_taken_down(task_id, [])

    ledger.close_task(task_id, "expired at kie.ai (14-day retention)")  # listed open before the takedown
    ledger.close_task(f"{task_id}-none", "expired at kie.ai (14-day retention)")

    found = ledger.get(task_id)
    assert found is not None
    assert found[0].reason == TAKEN_DOWN
    assert ledger.get(f"{task_id}-none") is None


def test_takedown_again_finds_the_keys_the_version_before_kept_on_the_task_item(
    stack: Stack, task_id: str
) -> None:
    """The version before kept a takedown's keys on the task item itself (`taken_down_keys`); a
    takedown run again after the upgrade (Object Lock's retention over) still removes them."""
    key = f"kie/{task_id}/00.png"
    stack.tasks_table().put_item(
        Item={
            "pk": task_id,
            "sk": "TASK",
            "task_id": task_id,
            "family": "market",
            "outcome": "success",
            "reason": "taken down: its archived files, callbacks and ledger items were removed",
            "taken_down_at": now_iso(),
            "taken_down_keys": [key],
            "created_at": now_iso(),
            "updated_at": now_iso(),
        }
    )
    stack.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=b"a version Object Lock kept")

    status, report = _take_down(stack, task_id)

    assert status == 0, report
    assert f"removed  {key}" in report
    assert objects_under(stack, f"kie/{task_id}/") == {}
    found = Ledger(stack.tasks_table()).get(task_id)
    assert found is not None
    assert found[0].taken_down_keys == [key]


def test_takedown_of_a_task_not_yet_recorded_fences_it(inline_mode: Stack, task_id: str) -> None:
    # Its callbacks failed so far (an outage): kie.ai's retry, or a backfill, comes after the
    # takedown and must record nothing (the soak, seed 1: the backfill archived a task taken down).
    served = serve(inline_mode, task_id, [(".png", 4096)])
    status, report = _take_down(inline_mode, task_id)
    assert status == 0, report
    assert "not recorded" in report

    assert post_callback(market_body(task_id, list(served)), task_id)[0] == 200  # kie.ai's retry
    assert _post_copies({"taskId": task_id, "urls": list(served)})[0] == 200
    assert objects_under(inline_mode, f"kie/{task_id}/") == {}
    assert _ledger_items(inline_mode, task_id) == ["TASK"]
    doc = task_document(task_id)
    assert (doc["state"], doc["files"]) == ("ignored", [])
    assert "taken down" in doc["reason"]


@pytest.fixture
def locked_bucket(stack: Stack) -> Iterator[tuple[Stack, str]]:
    """The archive in a bucket with Object Lock in governance mode (ObjectLockRetentionDays=1)."""
    bucket = f"kie2s3-locked-{uuid.uuid4().hex[:8]}"
    s3 = stack.client("s3")
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
    with function_environment({**stack.env, "BUCKET_NAME": bucket, "COPY_MODE": "inline"}):
        yield stack, bucket


def _versions(stack: Stack, bucket: str, task_id: str) -> list[tuple[str, bool]]:
    """(key, is a delete marker) of every version under the task's prefix."""
    found = stack.client("s3").list_object_versions(Bucket=bucket, Prefix=f"kie/{task_id}/")
    return sorted(
        [(v["Key"], False) for v in found.get("Versions", [])]
        + [(m["Key"], True) for m in found.get("DeleteMarkers", [])]
    )


def test_takedown_under_object_lock_hides_objects_until_governance_is_bypassed(
    locked_bucket: tuple[Stack, str], task_id: str
) -> None:
    stack, bucket = locked_bucket
    ((url, _source),) = serve(stack, task_id, [(".png", 4096)]).items()
    assert post_callback(market_body(task_id, [url]), task_id)[0] == 200
    key = f"kie/{task_id}/00.png"

    status, report = _take_down(stack, task_id, bucket)
    # Governance mode keeps every version; a delete marker hides the object from GET and listings.
    assert status == 0
    assert f"locked   {key}" in report
    assert (key, True) in _versions(stack, bucket, task_id)
    assert (key, False) in _versions(stack, bucket, task_id)
    assert stack.client("s3").list_objects_v2(Bucket=bucket, Prefix=f"kie/{task_id}/").get("KeyCount") == 0

    status, report = _take_down(stack, task_id, bucket, bypass_governance=True)
    assert status == 0, report
    assert _versions(stack, bucket, task_id) == []
