"""Input limits through the real handler: every refusal is a 4xx with a reason, never a 5xx."""

import base64
import json
from typing import Any

import pytest
from devstack.callbacks import market_body
from devstack.lambda_runtime import http_event
from devstack.stack import WEBHOOK_HMAC_KEY, Stack
from tests.integration.conftest import counted, objects_under, post_callback, printed, send

from kie2s3.handlers.http import MAX_BODY_BYTES

BAD_TASK_IDS = [
    "../x",
    "a/b",
    "..",
    ".hidden",
    "a\nb",
    "abc\n",
    "a\x00b",
    "a\tb",
    "x" * 129,
    "tâsk",
    "a b",
    "",
]


def _padded(task_id: str, size: int) -> dict[str, object]:
    body = market_body(task_id, [])
    body["pad"] = ""
    body["pad"] = "x" * (size - len(json.dumps(body)))
    assert len(json.dumps(body)) == size
    return body


def test_callback_body_over_limit_is_413_and_stores_nothing(queue_mode: Stack, task_id: str) -> None:
    status, answer = post_callback(_padded(task_id, MAX_BODY_BYTES + 1), task_id)
    assert status == 413
    assert str(MAX_BODY_BYTES) in answer["message"]
    assert objects_under(queue_mode, f"kie/{task_id}/") == {}


def test_callback_body_at_limit_is_accepted(queue_mode: Stack, task_id: str) -> None:
    status, answer = post_callback(_padded(task_id, MAX_BODY_BYTES), task_id)
    assert (status, answer["taskId"]) == (200, task_id)


def test_callback_base64_body_over_limit_is_413(queue_mode: Stack, task_id: str) -> None:
    raw = json.dumps(_padded(task_id, MAX_BODY_BYTES + 3)).encode()
    event = http_event("POST", "/callbacks/kie", body=base64.b64encode(raw).decode())
    event["isBase64Encoded"] = True
    status, answer = send(event)
    assert status == 413
    assert "limit" in answer["message"]


def test_copies_body_over_limit_is_413(queue_mode: Stack, task_id: str) -> None:
    urls = [f"https://tempfile.aiquickdraw.com/p/{n}-{'x' * 4000}.png" for n in range(70)]
    status, answer = send(http_event("POST", "/copies", body={"taskId": task_id, "urls": urls}))
    assert status == 413
    assert "limit" in answer["message"]


def test_copies_largest_valid_body_fits_the_limit(queue_mode: Stack) -> None:
    urls = [f"https://tempfile.aiquickdraw.com/{n:02d}{'x' * 4057}.png" for n in range(50)]
    body = json.dumps({"taskId": "a" * 128, "family": "x" * 32, "urls": urls})
    assert len(urls[0]) == 4096
    assert len(body) < MAX_BODY_BYTES


@pytest.mark.parametrize("bad", BAD_TASK_IDS, ids=repr)
def test_callback_bad_task_id_is_400(queue_mode: Stack, bad: str) -> None:
    status, answer = post_callback(market_body(bad, []), bad or "x")
    assert status == 400
    assert "task id" in answer["message"]


@pytest.mark.parametrize("bad", BAD_TASK_IDS, ids=repr)
def test_copies_bad_task_id_is_400(queue_mode: Stack, bad: str) -> None:
    status, answer = send(
        http_event(
            "POST", "/copies", body={"taskId": bad, "urls": ["https://tempfile.aiquickdraw.com/a.png"]}
        )
    )
    assert status == 400
    assert any("taskId" in detail for detail in answer["details"])


@pytest.mark.parametrize(
    ("raw_path", "status"),
    [
        ("/tasks/..%2Fx", 400),
        ("/tasks/%2e%2e", 400),
        ("/tasks/a%0Ab", 400),
        ("/tasks/a%00b", 400),
        ("/tasks/" + "x" * 129, 400),
        ("/tasks/t%C3%A2sk", 400),
        ("/tasks/.hidden", 400),
        ("/tasks/a/b", 404),  # no route has two segments there: the gateway answers 404 as well
        ("/tasks/../x", 404),
    ],
)
def test_get_task_bad_task_id_is_refused(queue_mode: Stack, raw_path: str, status: int) -> None:
    answer_status, _ = send(http_event("GET", raw_path, route="/tasks/{taskId}"))
    assert answer_status == status


@pytest.mark.parametrize("header", ["X-Webhook-Signature", "X-Webhook-Timestamp"])
def test_callback_absurdly_long_auth_header_is_401(queue_mode: Stack, task_id: str, header: str) -> None:
    status, answer = post_callback(market_body(task_id, []), task_id, headers={header: "A" * 2048})
    assert status == 401
    assert "longer than" in answer["message"]
    assert objects_under(queue_mode, f"kie/{task_id}/") == {}


@pytest.mark.parametrize(
    "raw",
    ["[" * 100_000 + "]" * 100_000, '{"a":' * 40_000 + "1" + "}" * 40_000, '{"taskId": 1e999999}'],
    ids=["deep-list", "deep-object", "huge-number"],
)
def test_callback_pathological_json_is_400(queue_mode: Stack, raw: str) -> None:
    status, _ = post_callback(raw, "x", hmac_key=WEBHOOK_HMAC_KEY)  # type: ignore[arg-type]
    assert status == 400


@pytest.mark.parametrize(
    "raw", ["[" * 100_000 + "]" * 100_000, '{"taskId": "abc", "urls": ' + "[" * 50_000 + "]" * 50_000 + "}"]
)
def test_copies_pathological_json_is_400(queue_mode: Stack, raw: str) -> None:
    status, _ = send(http_event("POST", "/copies", body=raw))
    assert status == 400


def _base64_event(raw: bytes) -> dict[str, object]:
    event = http_event("POST", "/callbacks/kie", body=base64.b64encode(raw).decode())
    event["isBase64Encoded"] = True
    return event


@pytest.mark.parametrize("extra", [0, 1, 2], ids=["padding-2", "padding-1", "no-padding"])
def test_callback_base64_body_at_limit_is_not_refused_for_size(
    queue_mode: Stack, task_id: str, extra: int
) -> None:
    # 262,144 bytes encode with two `=`, 262,143 with one: the padding is not part of the body.
    raw = json.dumps(_padded(task_id, MAX_BODY_BYTES - extra)).encode()
    status, answer = send(_base64_event(raw))
    assert status != 413, answer


@pytest.mark.parametrize("over", [1, 2, 3])
def test_callback_base64_body_over_limit_reports_its_decoded_size(
    queue_mode: Stack, task_id: str, over: int
) -> None:
    status, answer = send(_base64_event(json.dumps(_padded(task_id, MAX_BODY_BYTES + over)).encode()))
    assert status == 413
    assert (
        answer["message"] == f"request body is {MAX_BODY_BYTES + over} bytes; the limit is {MAX_BODY_BYTES}"
    )


def test_callback_json_string_nested_too_deep_is_archived_and_ignored(
    queue_mode: Stack, task_id: str
) -> None:
    # Veo sends `resultUrls` as an array or as one JSON-encoded in a string: this string nests 50,000 deep.
    deep = "[" * 50_000 + "]" * 50_000
    body = {"code": 200, "msg": "ok", "data": {"taskId": task_id, "info": {"resultUrls": deep}}}
    status, answer = post_callback(body, task_id)
    assert (status, answer["state"]) == (200, "ignored"), answer
    [archived] = [k for k in objects_under(queue_mode, f"kie/{task_id}/") if "/callbacks/" in k]
    stored = queue_mode.client("s3").get_object(Bucket=queue_mode.bucket, Key=archived)["Body"].read()
    assert json.loads(stored) == body  # kept for a replay


@pytest.mark.parametrize("header", ["X-Webhook-Signature", "X-Webhook-Timestamp"])
def test_callback_lone_surrogate_in_auth_header_is_401(queue_mode: Stack, task_id: str, header: str) -> None:
    status, answer = post_callback(market_body(task_id, []), task_id, headers={header: "abc\ud800="})
    assert status == 401, answer
    assert objects_under(queue_mode, f"kie/{task_id}/") == {}


def test_callback_lone_surrogate_in_body_is_400(queue_mode: Stack, task_id: str) -> None:
    # A character no UTF-8 text can hold, in the body itself (not a JSON escape of one).
    raw = json.dumps(market_body(task_id, [])).replace('"model"', '"mod\ud800el"')
    status, answer = post_callback(raw, task_id)  # type: ignore[arg-type]
    assert status == 400, answer
    assert objects_under(queue_mode, f"kie/{task_id}/") == {}


def test_copies_lone_surrogate_in_body_is_400(queue_mode: Stack, task_id: str) -> None:
    raw = json.dumps({"taskId": task_id, "urls": ["https://tempfile.aiquickdraw.com/a.png"]})
    status, answer = send(http_event("POST", "/copies", body=raw.replace(".png", ".png\udfff")))
    assert status == 400, answer


REFUSED_CALLBACKS = {
    "not-json": (lambda task_id: post_callback("{not json", task_id), 400),  # type: ignore[arg-type]
    "no-task-id": (lambda task_id: post_callback({"code": 200, "data": {}}, task_id), 400),
    "nested-too-deep": (lambda task_id: post_callback("[" * 100_000 + "]" * 100_000, task_id), 400),  # type: ignore[arg-type]
    "bad-signature": (
        lambda task_id: post_callback(market_body(task_id, []), task_id, hmac_key="wrong"),
        401,
    ),
    "too-large": (lambda task_id: post_callback(_padded(task_id, MAX_BODY_BYTES + 1), task_id), 413),
}


@pytest.mark.parametrize("case", sorted(REFUSED_CALLBACKS))
def test_callback_refusal_is_logged_and_counted_once(
    queue_mode: Stack, task_id: str, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    refuse, expected = REFUSED_CALLBACKS[case]
    with printed(capsys) as documents:
        status, answer = refuse(task_id)
    assert status == expected, answer
    [logged] = [d for d in documents if d.get("message") in ("request refused", "callback refused")]
    assert (logged["message"], logged["status"], logged["reason"]) == (
        "request refused",
        expected,
        answer["message"],
    )
    assert (counted(documents, "CallbacksRejected"), counted(documents, "RequestsRefused")) == (1, 1)


def test_copies_refusal_is_logged_and_counted_once(
    queue_mode: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    with printed(capsys) as documents:
        status, answer = send(http_event("POST", "/copies", body={"taskId": "../x", "urls": []}))
    assert status == 400, answer
    [logged] = [d for d in documents if d.get("message") == "request refused"]
    assert (logged["status"], logged["reason"]) == (400, "invalid request")
    assert (counted(documents, "CallbacksRejected"), counted(documents, "RequestsRefused")) == (0, 1)


@pytest.mark.parametrize("char", ["a", "é"], ids=["ascii", "non-ascii"])
def test_callback_result_url_too_long_for_a_ledger_item_is_not_a_5xx(
    queue_mode: Stack, task_id: str, char: str
) -> None:
    """One result URL as long as the body limit allows: its file item (canonical source and full
    URL) would pass DynamoDB's 400 KB item size. The callback is answered, the rest archived."""
    short = f"https://tempfile.aiquickdraw.com/p/{task_id}.png"

    def body(chars: int) -> dict[str, Any]:
        return market_body(task_id, [short, f"https://tempfile.aiquickdraw.com/p/{char * chars}.png"])

    per_char = len(json.dumps(body(1001))) - len(json.dumps(body(1000)))  # as the body's JSON writes it
    fits = (MAX_BODY_BYTES - len(json.dumps(body(0))) - 1024) // per_char
    status, doc = post_callback(body(fits), task_id)
    assert status == 200, doc
    assert [f["source"] for f in doc["files"]] == [short]
    assert doc["reason"] == "1 result URLs longer than 4096 characters were not archived"
