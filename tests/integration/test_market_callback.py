"""The Market path end to end: signed callback → ledger → queue → worker → S3, against real HTTP."""

import hashlib
import time
from typing import Any

import pytest
from devstack.callbacks import market_body
from devstack.kie_emulator import FileFault
from devstack.lambda_runtime import function_environment, http_event, invoke, task_status_event
from devstack.stack import CALLBACK_TOKEN, Stack
from tests.integration.conftest import (
    archived_files,
    incomplete_uploads,
    objects_under,
    post_callback,
    ranges_for,
    send,
    serve,
)

MIB = 1024**2


def _get_task(task_id: str) -> tuple[int, dict[str, Any]]:
    return send(task_status_event(task_id))


def _stored(stack: Stack, key: str) -> tuple[bytes, dict[str, Any], dict[str, str]]:
    s3 = stack.client("s3")
    obj = s3.get_object(Bucket=stack.bucket, Key=key)
    tags = s3.get_object_tagging(Bucket=stack.bucket, Key=key)["TagSet"]
    return obj["Body"].read(), obj, {t["Key"]: t["Value"] for t in tags}


def test_callback_market_queue_mode_archives_each_file_once(queue_mode: Stack, task_id: str) -> None:
    served = serve(queue_mode, task_id, [(".png", 300 * 1024), (".mp4", 20 * MIB)])
    urls = list(served)

    status, doc = post_callback(market_body(task_id, urls), task_id)

    assert status == 200
    assert doc["taskId"] == task_id
    assert doc["state"] == "pending"
    assert [f["state"] for f in doc["files"]] == ["pending", "pending"]
    queue_mode.poller().drain()

    status, doc = _get_task(task_id)
    assert status == 200
    assert doc["state"] == "copied"
    for entry, (url, source) in zip(doc["files"], served.items(), strict=True):
        body, obj, tags = _stored(queue_mode, entry["key"])
        assert f"/{task_id}/" in f"/{entry['key']}"
        assert body == source.read(0, source.size)
        assert entry["sha256"] == hashlib.sha256(body).hexdigest() == source.sha256_hex() == tags["sha256"]
        assert entry["bytes"] == source.size
        assert entry["contentType"] == obj["ContentType"] == source.content_type
        assert entry["source"] == url
        assert queue_mode.emulator.download_url_calls[url] == 1
    assert archived_files(queue_mode, task_id) == {
        f"kie/{task_id}/00.png": 300 * 1024,
        f"kie/{task_id}/01.mp4": 20 * MIB,
    }
    assert incomplete_uploads(queue_mode, task_id) == []


def test_callback_archives_raw_body_before_answering(queue_mode: Stack, task_id: str) -> None:
    serve(queue_mode, task_id, [(".png", 1024)])
    body = market_body(task_id, [f"https://tempfile.aiquickdraw.com/p/{task_id}_0.png"])
    status, _ = post_callback(body, task_id)
    assert status == 200
    raw = list(objects_under(queue_mode, f"kie/{task_id}/callbacks/"))
    assert len(raw) == 1
    stored = queue_mode.client("s3").get_object(Bucket=queue_mode.bucket, Key=raw[0])["Body"].read()
    assert stored == __import__("json").dumps(body).encode()
    queue_mode.poller().drain()


def test_callback_inline_mode_copies_in_the_request(inline_mode: Stack, task_id: str) -> None:
    served = serve(inline_mode, task_id, [(".png", 64 * 1024), (".mp4", 9 * MIB)])
    status, doc = post_callback(market_body(task_id, list(served)), task_id)
    assert status == 200
    assert doc["state"] == "copied"
    assert [f["sha256"] for f in doc["files"]] == [f.sha256_hex() for f in served.values()]


@pytest.mark.parametrize(
    "tamper",
    ["missing", "wrong-key", "stale", "future", "other-task", "garbage-timestamp"],
)
def test_callback_bad_signature_is_refused_and_archives_nothing(
    queue_mode: Stack, task_id: str, tamper: str
) -> None:
    serve(queue_mode, task_id, [(".png", 1024)])
    body = market_body(task_id, [f"https://tempfile.aiquickdraw.com/p/{task_id}_0.png"])
    now = int(time.time())
    options: dict[str, Any] = {
        "missing": {"hmac_key": None},
        "wrong-key": {"hmac_key": "not-the-key"},
        "stale": {"timestamp": now - 400},
        "future": {"timestamp": now + 400},
        "other-task": {"task_id": "another0task0id"},
        "garbage-timestamp": {"headers": {"X-Webhook-Timestamp": "yesterday"}},
    }[tamper]
    signed_for = options.pop("task_id", task_id)
    if tamper == "other-task":
        from devstack.callbacks import callback_event
        from devstack.kie_emulator import sign
        from devstack.stack import WEBHOOK_HMAC_KEY

        event = callback_event(
            body, task_id=task_id, hmac_key=None, headers=sign(WEBHOOK_HMAC_KEY, signed_for)
        )
        status, answer = send(event)
    else:
        status, answer = post_callback(body, task_id, **options)
    assert status == 401
    assert answer["message"]
    assert objects_under(queue_mode, f"kie/{task_id}/") == {}
    assert _get_task(task_id)[0] == 404
    assert queue_mode.emulator.download_url_calls[body["data"]["resultJson"]] == 0


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("this is not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"code": 200, "data": {"state": "success"}}', "no task id"),
        ('{"code": 200, "data": {"taskId": "../../etc"}}', "characters"),
        ("", "not JSON"),
    ],
)
def test_callback_bad_body_is_400(queue_mode: Stack, raw: str, reason: str) -> None:
    from devstack.callbacks import callback_event

    status, answer = send(callback_event(raw, task_id="x", hmac_key=None))
    assert status == 400
    assert reason in answer["message"]


def test_callback_base64_body_is_accepted(queue_mode: Stack, task_id: str) -> None:
    import base64
    import json

    from devstack.callbacks import callback_event
    from devstack.stack import WEBHOOK_HMAC_KEY

    body = market_body(task_id, [])
    event = callback_event(body, task_id=task_id, hmac_key=WEBHOOK_HMAC_KEY)
    event["body"] = base64.b64encode(json.dumps(body).encode()).decode()
    event["isBase64Encoded"] = True
    status, doc = send(event)
    assert status == 200
    assert doc["state"] == "ignored"  # a success naming no file is never `copied`
    assert doc["files"] == []


def test_callback_market_failure_records_reason_and_copies_nothing(queue_mode: Stack, task_id: str) -> None:
    status, doc = post_callback(market_body(task_id, [], state="fail", code=501), task_id)
    assert status == 200
    assert doc["state"] == "failed"
    assert doc["reason"] == "Internal server error (failCode 500)"
    assert doc["files"] == []
    assert archived_files(queue_mode, task_id) == {}


def test_callback_wrong_served_content_type_is_fixed_from_bytes(inline_mode: Stack, task_id: str) -> None:
    served = serve(inline_mode, task_id, [(".png", 4096)])
    ((url, source),) = served.items()
    inline_mode.emulator.inject_file_fault(source.name, FileFault.wrong_content_type("image/jpeg"))
    status, doc = post_callback(market_body(task_id, [url]), task_id)
    assert status == 200
    assert doc["files"][0]["contentType"] == "image/png"
    _, obj, _ = _stored(inline_mode, doc["files"][0]["key"])
    assert obj["ContentType"] == "image/png"


def test_callback_foreign_host_is_refused_without_download(queue_mode: Stack, task_id: str) -> None:
    url = "https://downloads.evil.example/payload.png"
    status, doc = post_callback(market_body(task_id, [url]), task_id)
    assert status == 200
    assert doc["state"] == "failed"
    assert doc["files"][0]["state"] == "failed"
    assert "ALLOWED_SOURCE_HOSTS" in doc["files"][0]["error"]
    assert queue_mode.emulator.download_url_calls[url] == 0
    queue_mode.poller().drain()
    assert archived_files(queue_mode, task_id) == {}


def test_copy_download_url_422_fails_permanently(queue_mode: Stack, task_id: str) -> None:
    served = serve(queue_mode, task_id, [(".png", 2048)])
    (url,) = served
    queue_mode.emulator.inject_download_url(422, times=5, url=url)
    post_callback(market_body(task_id, [url]), task_id)
    queue_mode.poller().drain()
    _, doc = _get_task(task_id)
    assert doc["state"] == "failed"
    assert "422" in doc["files"][0]["error"]
    assert queue_mode.emulator.download_url_calls[url] == 1
    assert archived_files(queue_mode, task_id) == {}


def test_copy_download_url_429_is_retried_until_copied(queue_mode: Stack, task_id: str) -> None:
    served = serve(queue_mode, task_id, [(".mp4", 9 * MIB)])
    (url,) = served
    queue_mode.emulator.inject_download_url(429, times=2, url=url)
    post_callback(market_body(task_id, [url]), task_id)
    queue_mode.poller().drain()
    _, doc = _get_task(task_id)
    assert doc["state"] == "copied"
    assert doc["files"][0]["sha256"] == served[url].sha256_hex()
    assert queue_mode.emulator.download_url_calls[url] == 3


def test_copy_truncated_download_is_retried_and_leaves_no_upload(queue_mode: Stack, task_id: str) -> None:
    served = serve(queue_mode, task_id, [(".mp4", 20 * MIB)])
    ((url, source),) = served.items()
    # The opening response (the first part's range) breaks off midway, and so does the first range
    # fetched again: the part is fetched a third time while the other ranges go on.
    queue_mode.emulator.inject_file_fault(source.name, FileFault.truncate(3 * MIB), times=2)
    post_callback(market_body(task_id, [url]), task_id)
    queue_mode.poller().drain()
    _, doc = _get_task(task_id)
    assert doc["state"] == "copied"
    body, _, _ = _stored(queue_mode, doc["files"][0]["key"])
    assert hashlib.sha256(body).hexdigest() == source.sha256_hex()
    # 2 broken first ranges, then one whole pass over the ranges: nothing else is fetched again.
    assert queue_mode.emulator.file_requests[source.name] == 2 + ranges_for(source.size)
    assert incomplete_uploads(queue_mode, task_id) == []


def test_copy_same_job_twice_stores_once(queue_mode: Stack, task_id: str) -> None:
    served = serve(queue_mode, task_id, [(".mp4", 9 * MIB)])
    body = market_body(task_id, list(served))
    post_callback(body, task_id)
    poller = queue_mode.poller()
    poller.drain()
    # kie.ai may deliver a callback again: the copied file is neither reset nor copied again.
    status, doc = post_callback(body, task_id)
    assert status == 200
    assert doc["state"] == "copied"
    poller.drain()
    assert queue_mode.emulator.download_url_calls[next(iter(served))] == 1


def test_callback_token_mode(stack: Stack, task_id: str) -> None:
    env = {**stack.env, "KIE_WEBHOOK_HMAC_SECRET": "", "COPY_MODE": "inline"}
    body = market_body(task_id, [])
    with function_environment(env):
        assert post_callback(body, task_id, hmac_key=None, query={"token": CALLBACK_TOKEN})[0] == 200
        assert post_callback(body, task_id, hmac_key=None, query={"token": "guess"})[0] == 401
        assert post_callback(body, task_id, hmac_key=None)[0] == 401


def test_callback_refused_when_no_authentication_is_configured(stack: Stack, task_id: str) -> None:
    env = {**stack.env, "KIE_WEBHOOK_HMAC_SECRET": "", "CALLBACK_TOKEN_SECRET": "", "COPY_MODE": "inline"}
    with function_environment(env):
        status, answer = post_callback(market_body(task_id, []), task_id, query={"token": CALLBACK_TOKEN})
    assert status == 401
    assert "not configured" in answer["message"]


def test_get_task_unknown_is_404(queue_mode: Stack) -> None:
    status, answer = _get_task("0123456789abcdef")
    assert status == 404
    assert "unknown task" in answer["message"]


def test_get_task_invalid_id_is_400(queue_mode: Stack) -> None:
    status, _ = send(http_event("GET", "/tasks/bad%2F..", route="/tasks/{taskId}"))
    assert status == 400


def test_lambda_handler_refuses_unknown_event(queue_mode: Stack) -> None:
    with pytest.raises(ValueError, match="unsupported event"):
        invoke({"detail-type": "Object Created", "source": "aws.s3"})
