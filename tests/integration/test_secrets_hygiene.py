"""No secret reaches a log: every path runs at DEBUG while stdout, stderr and every log record are captured."""

import base64
import hashlib
import hmac
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from devstack.callbacks import callback_event, market_body, serve_result_files
from devstack.forward_receiver import ForwardReceiver
from devstack.lambda_runtime import function_environment, http_event, task_status_event
from devstack.stack import CALLBACK_TOKEN, FORWARD_HMAC_KEY, KIE_API_KEY, WEBHOOK_HMAC_KEY, Stack
from tests.integration.conftest import post_callback, send, serve

from kie2s3.observability import logger as function_logger

# On Lambda the function's credentials are temporary: AWS_SESSION_TOKEN is always set.
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLEsessionTOKENdoNotLog"
SECRETS = (KIE_API_KEY, WEBHOOK_HMAC_KEY, CALLBACK_TOKEN, SESSION_TOKEN)
# What presigned links carry (the emulator's `sig=`, S3/R2's X-Amz-Signature): never logged.
LINK_SECRETS = ("sig=", "X-Amz-Signature", "expires=")


@dataclass
class Capture:
    """Everything the function printed and every record logged, Powertools-formatted with its fields."""

    capsys: pytest.CaptureFixture[str]
    caplog: pytest.LogCaptureFixture

    def text(self) -> str:
        out, err = self.capsys.readouterr()
        formatter = function_logger.registered_formatter
        records = "\n".join(f"{formatter.format(r)} {r.args!r}" for r in self.caplog.records)
        return "\n".join((out, err, records))


@pytest.fixture
def debug_capture(
    stack: Stack,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Capture]:
    """The function at DEBUG with a session token, its Powertools handler writing to the captured
    stdout, all loggers at DEBUG."""
    # A fresh container: boto3's default session reads the credentials (the token too) anew.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    # Powertools bound its handler to the sys.stdout of import time and read its level then.
    handler = function_logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous_stream, previous_level = handler.setStream(sys.stdout), function_logger.log_level
    function_logger.setLevel("DEBUG")
    caplog.set_level(logging.DEBUG)  # the root logger: botocore, urllib3, Powertools internals
    try:
        env = {**stack.env, "POWERTOOLS_LOG_LEVEL": "DEBUG", "AWS_SESSION_TOKEN": SESSION_TOKEN}
        with function_environment(env):
            yield Capture(capsys, caplog)
    finally:
        handler.stream = previous_stream  # not setStream(): it would flush capsys's stream, closed by now
        function_logger.setLevel(previous_level)


def _signature(task_id: str, timestamp: str) -> str:
    digest = hmac.new(WEBHOOK_HMAC_KEY.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _status(event: dict[str, object]) -> int:
    return send(event)[0]


def _get_task(task_id: str) -> tuple[int, str | None]:
    status, doc = send(task_status_event(task_id))
    return status, doc.get("state")


def test_secrets_never_logged_on_any_path(debug_capture: Capture, stack: Stack) -> None:
    task_ids = [f"hygiene{n}{stack.emulator.port}" for n in range(6)]
    accepted, refused, by_urls, by_record, failing, token_mode = task_ids
    emulator = stack.emulator

    good = callback_event(
        market_body(accepted, list(serve(stack, accepted, [(".png", 2048)]))),
        task_id=accepted,
        hmac_key=WEBHOOK_HMAC_KEY,
    )
    assert _status(good) == 200
    bad = callback_event(market_body(refused, []), task_id=refused, hmac_key="not-the-key")
    assert _status(bad) == 401
    # The signatures sent, and the one the function computes to compare with, must not leak.
    timestamp = bad["headers"]["x-webhook-timestamp"]
    signatures = [e["headers"]["x-webhook-signature"] for e in (good, bad)] + [_signature(refused, timestamp)]

    urls = list(serve(stack, by_urls, [(".png", 1024)]))
    assert _status(http_event("POST", "/copies", body={"taskId": by_urls, "urls": urls})) == 202
    result = json.dumps({"resultUrls": list(serve(stack, by_record, [(".png", 1024)]))})
    emulator.add_task("market", by_record, {"taskId": by_record, "state": "success", "resultJson": result})
    assert _status(http_event("POST", "/copies", body={"taskId": by_record, "family": "market"})) == 202
    failing_urls = list(serve(stack, failing, [(".png", 1024)]))
    emulator.inject_download_url(401, url=failing_urls[0])
    assert post_callback(market_body(failing, failing_urls), failing)[0] == 200
    stack.poller().drain()  # queue mode: the copies run in the SQS worker
    assert [_get_task(t) for t in task_ids[:5]] == [
        (200, "copied"),
        (404, None),
        (200, "copied"),
        (200, "copied"),
        (200, "failed"),
    ]
    token_env = {**os.environ, "KIE_WEBHOOK_HMAC_SECRET": ""}
    with function_environment(token_env):
        token_query = {"token": CALLBACK_TOKEN}
        assert (
            post_callback(market_body(token_mode, []), token_mode, hmac_key=None, query=token_query)[0] == 200
        )

    logged = debug_capture.text()
    # The capture works: the function's own messages, DEBUG records and the links' paths are in it.
    captured = (
        "callback accepted",
        "request refused",
        "file archived",
        "copy failed",
        "download link resolved",
    )
    for expected in (*captured, '"level":"DEBUG"', "/dl/"):
        assert expected in logged, f"{expected!r} was not captured: the capture is broken"
    for secret in (*SECRETS, *signatures, *LINK_SECRETS):
        assert secret not in logged, f"{secret!r} was logged"


# A presigned source (S3/R2 style): every part of its query is a secret or names one.
PRESIGNED_SECRETS = ("deadbeefcafe0123456789presignedsig", "AKIAPRESIGNEDCRED", "FwoGZXIvYXdzPRESIGNEDtoken")
PRESIGNED_QUERY = (
    "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAPRESIGNEDCRED%2F20261101%2Fauto%2Fs3%2Faws4_request"
    "&X-Amz-Date=20261101T000000Z&X-Amz-Expires=3600"
    "&X-Amz-Security-Token=FwoGZXIvYXdzPRESIGNEDtoken"
    "&X-Amz-SignedHeaders=host&X-Amz-Signature=deadbeefcafe0123456789presignedsig"
)


def test_presigned_sources_never_logged_in_queue_mode(debug_capture: Capture, stack: Stack) -> None:
    by_callback, by_copies = (f"presigned{n}{stack.emulator.port}" for n in range(2))
    sources = {}
    for task in (by_callback, by_copies):
        url = f"https://tempfile.aiquickdraw.com/p/{task}.png{PRESIGNED_QUERY}"
        serve_result_files(stack.emulator, [url], size=2048)
        sources[task] = url
    assert post_callback(market_body(by_callback, [sources[by_callback]]), by_callback)[0] == 200
    copies = http_event("POST", "/copies", body={"taskId": by_copies, "urls": [sources[by_copies]]})
    assert _status(copies) == 202
    stack.poller().drain()  # queue mode: the jobs (full source URLs) go through SendMessageBatch
    assert [_get_task(t) for t in (by_callback, by_copies)] == [(200, "copied")] * 2

    logged = debug_capture.text()
    # The capture works: the jobs were sent, signed with the session, and the sources were logged.
    for expected in ("SendMessageBatch", "x-amz-security-token", f"/p/{by_callback}.png", "file archived"):
        assert expected.lower() in logged.lower(), f"{expected!r} was not captured: the capture is broken"
    for secret in (*SECRETS, *PRESIGNED_SECRETS, *LINK_SECRETS):
        assert secret not in logged, f"{secret!r} was logged"


def test_forwarding_never_logs_its_key_signature_target_token_links_or_answer(
    debug_capture: Capture, stack: Stack
) -> None:
    task_id = f"forwardhygiene{stack.emulator.port}"
    with ForwardReceiver(FORWARD_HMAC_KEY) as receiver:
        receiver.reply = b'{"answer":"the-handlers-own-reply-body"}'
        env = {**os.environ, "FORWARD_URL": receiver.url("/hook?token=handler-token-do-not-log")}
        with function_environment(env):
            served = serve(stack, task_id, [(".png", 1024)])
            assert post_callback(market_body(task_id, list(served)), task_id)[0] == 200
            stack.poller().drain()
            stack.forward_poller().drain()
        [got] = receiver.received
    assert got.verified
    assert "X-Amz-Signature" in got.body.decode()  # the forwarded document carries presigned links

    logged = debug_capture.text()
    for expected in ("callback forwarded", "/hook", '"level":"DEBUG"'):
        assert expected in logged, f"{expected!r} was not captured: the capture is broken"
    forwarded_secrets = (
        FORWARD_HMAC_KEY,
        got.headers["x-webhook-signature"],
        "handler-token-do-not-log",
        "the-handlers-own-reply-body",
    )
    for secret in (*SECRETS, *forwarded_secrets, *LINK_SECRETS):
        assert secret not in logged, f"{secret!r} was logged"
