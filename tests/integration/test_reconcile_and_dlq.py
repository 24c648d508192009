"""The reconciler and the dead-letter path: no job is lost, nothing waits forever."""

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest
from devstack.callbacks import market_body
from devstack.kie_emulator import FileFault
from devstack.lambda_runtime import http_event, invoke
from devstack.redrive import redrive
from devstack.stack import Stack
from tests.integration.conftest import post_callback, reconcile, send, serve, task_document

from kie2s3.handlers import sqs as sqs_handler
from kie2s3.handlers.wiring import get_services
from kie2s3.logic.services import RetryPolicy


def _purge(stack: Stack) -> None:
    """Lose every queued job (what a crash between ledger write and enqueue would do)."""
    sqs = stack.client("sqs")
    while messages := sqs.receive_message(QueueUrl=stack.env["COPY_QUEUE_URL"], MaxNumberOfMessages=10).get(
        "Messages"
    ):
        for m in messages:
            sqs.delete_message(QueueUrl=stack.env["COPY_QUEUE_URL"], ReceiptHandle=m["ReceiptHandle"])


def test_reconcile_resends_a_lost_job(queue_mode: Stack, task_id: str) -> None:
    served = serve(queue_mode, task_id, [(".png", 8192)])
    post_callback(market_body(task_id, list(served)), task_id)
    _purge(queue_mode)
    assert reconcile(get_services()).resent == [], "a fresh pending file is not stale yet"
    report = reconcile(get_services(), now=datetime.now(UTC) + timedelta(minutes=31))
    assert f"{task_id}#0" in report.resent
    queue_mode.poller().drain()
    assert task_document(task_id)["state"] == "copied"


def test_reconcile_completes_a_task_that_was_still_running(queue_mode: Stack, task_id: str) -> None:
    served = serve(queue_mode, task_id, [(".png", 4096), (".mp4", 65536)])
    queue_mode.emulator.add_task("market", task_id, {"taskId": task_id, "state": "generating"})
    status, doc = send(http_event("POST", "/copies", body={"taskId": task_id, "family": "market"}))
    assert (status, doc["state"]) == (202, "pending")
    queue_mode.emulator.add_task(
        "market",
        task_id,
        {"taskId": task_id, "state": "success", "resultJson": json.dumps({"resultUrls": list(served)})},
    )
    report = reconcile(get_services(), now=datetime.now(UTC) + timedelta(minutes=6))
    assert task_id in report.completed_tasks
    queue_mode.poller().drain()  # the copies it queued
    doc = task_document(task_id)
    assert doc["state"] == "copied"
    assert [f["sha256"] for f in doc["files"]] == [s.sha256_hex() for s in served.values()]


def test_reconcile_closes_what_kie_no_longer_keeps(queue_mode: Stack, task_id: str) -> None:
    served = serve(queue_mode, task_id, [(".png", 1024)])
    post_callback(market_body(task_id, list(served)), task_id)
    _purge(queue_mode)
    report = reconcile(get_services(), now=datetime.now(UTC) + timedelta(days=15))
    assert f"{task_id}#0" in report.expired
    doc = task_document(task_id)
    assert doc["files"][0]["state"] == "failed"
    assert "14-day" in doc["files"][0]["error"]


def test_reconcile_runs_from_the_schedule_event(queue_mode: Stack) -> None:
    answer = invoke(
        json.loads((__import__("pathlib").Path("events") / "scheduled-reconcile.json").read_text())
    )
    assert set(answer) == {
        "resent",
        "expired",
        "completed_tasks",
        "still_running",
        "replayed",
        "still_unrecognised",
        "aborted_uploads",
        "errors",
    }


@pytest.fixture
def quick_retries(queue_mode: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    fast = dataclasses.replace(
        get_services(), retry=RetryPolicy(attempts=2, base_seconds=0.01, cap_seconds=0.05)
    )
    monkeypatch.setattr(sqs_handler, "get_services", lambda: fast)
    return queue_mode


def test_job_failing_every_delivery_lands_in_dlq_then_redrive_completes_it(
    quick_retries: Stack, task_id: str
) -> None:
    stack = quick_retries
    served = serve(stack, task_id, [(".mp4", 9 * 1024**2)])
    ((url, source),) = served.items()
    stack.emulator.inject_file_fault(source.name, FileFault.http_status(503), times=10)
    post_callback(market_body(task_id, [url]), task_id)
    stack.poller().drain(timeout=120)
    doc = task_document(task_id)
    assert doc["files"][0]["state"] == "failed"
    assert "gave up after the last delivery" in doc["files"][0]["error"]
    assert stack.emulator.file_requests[source.name] == 10  # 5 deliveries x 2 attempts
    sqs = stack.client("sqs")
    dlq_url = sqs.get_queue_url(QueueName=stack.aws.physical_ids["CopyDeadLetterQueue"].rsplit("/", 1)[-1])[
        "QueueUrl"
    ]
    assert redrive(sqs, dlq_url, stack.env["COPY_QUEUE_URL"]) == 1
    stack.poller().drain()
    doc = task_document(task_id)
    assert doc["state"] == "copied"
    assert doc["files"][0]["sha256"] == source.sha256_hex()
