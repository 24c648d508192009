"""`POST /copies` and `GET /tasks/{taskId}` through the real handler."""

import json
from typing import Any

import pytest
from devstack.lambda_runtime import http_event, task_status_event
from devstack.stack import Stack
from tests.integration.conftest import objects_under, send, serve

MIB = 1024**2


def post_copies(body: Any) -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, str) else json.dumps(body)
    return send(http_event("POST", "/copies", body=raw))


def test_copies_by_urls_inline_copies_now(inline_mode: Stack, task_id: str) -> None:
    served = serve(inline_mode, task_id, [(".png", 4096), (".mp4", 6 * MIB)])
    status, doc = post_copies({"taskId": task_id, "urls": list(served)})
    assert status == 200
    assert doc["family"] == "direct"
    assert doc["state"] == "copied"
    assert [f["sha256"] for f in doc["files"]] == [s.sha256_hex() for s in served.values()]


def test_copies_by_urls_queue_mode_answers_202_then_copies(queue_mode: Stack, task_id: str) -> None:
    served = serve(queue_mode, task_id, [(".png", 4096)])
    status, doc = post_copies({"taskId": task_id, "family": "market", "urls": list(served)})
    assert status == 202
    assert doc["state"] == "pending"
    queue_mode.poller().drain()
    status, doc = send(task_status_event(task_id))
    assert status == 200
    assert doc["state"] == "copied"
    assert list(objects_under(queue_mode, f"kie/{task_id}/")) == [f"kie/{task_id}/00.png"]


def test_copies_by_task_id_reads_market_record_info(inline_mode: Stack, task_id: str) -> None:
    served = serve(inline_mode, task_id, [(".png", 2048), (".png", 3072)])
    inline_mode.emulator.add_task(
        "market",
        task_id,
        {"taskId": task_id, "state": "success", "resultJson": json.dumps({"resultUrls": list(served)})},
    )
    status, doc = post_copies({"taskId": task_id, "family": "market"})
    assert status == 200
    assert doc["state"] == "copied"
    assert [f["source"] for f in doc["files"]] == list(served)
    assert inline_mode.emulator.record_info_calls[task_id] == 1


def test_copies_by_task_id_still_running_copies_nothing(inline_mode: Stack, task_id: str) -> None:
    inline_mode.emulator.add_task(
        "market", task_id, {"taskId": task_id, "state": "generating", "resultJson": None}
    )
    status, doc = post_copies({"taskId": task_id, "family": "market"})
    assert status == 200
    assert doc["state"] == "ignored"
    assert doc["reason"] == "generating"
    assert doc["files"] == []


def test_copies_unknown_task_is_404(inline_mode: Stack, task_id: str) -> None:
    status, answer = post_copies({"taskId": task_id, "family": "market"})
    assert status == 404
    assert task_id in answer["message"]


def test_copies_record_info_rejected_is_502(inline_mode: Stack, task_id: str) -> None:
    inline_mode.emulator.inject_record_info(401, task_id=task_id)
    status, answer = post_copies({"taskId": task_id, "family": "market"})
    assert status == 502
    assert "401" in answer["message"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"taskId": "abc123"}, "give `urls`"),
        ({"taskId": "abc123", "family": "dalle"}, "unknown family"),
        ({"taskId": "abc/123", "urls": ["https://tempfile.aiquickdraw.com/a.png"]}, "invalid request"),
        ({"taskId": "abc123", "urls": []}, "invalid request"),
        (
            {"taskId": "abc123", "urls": [f"https://tempfile.aiquickdraw.com/{n}.png" for n in range(51)]},
            "invalid request",
        ),
        ({"taskId": "abc123", "urls": ["x"], "extra": 1}, "invalid request"),
        ({"urls": ["https://tempfile.aiquickdraw.com/a.png"]}, "invalid request"),
        ("not json", "invalid request"),
    ],
)
def test_copies_bad_request_is_400(inline_mode: Stack, body: Any, reason: str) -> None:
    status, answer = post_copies(body)
    assert status == 400
    assert reason in answer["message"]


def test_copies_refused_url_is_400_and_records_nothing(inline_mode: Stack, task_id: str) -> None:
    status, answer = post_copies({"taskId": task_id, "urls": ["http://169.254.169.254/latest/meta-data/"]})
    assert status == 400
    assert answer["details"] == [
        "http://169.254.169.254/latest/meta-data/: source scheme 'http' is not allowed"
    ]
    assert send(task_status_event(task_id))[0] == 404
