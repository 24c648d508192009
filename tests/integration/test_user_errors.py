"""Errors in the caller's words, through the real handler: `POST /copies` reads a body as the callback
route does and says what is wrong with it as the callback route says it; a `?family=` hint no parser
knows never drops a callback."""

import base64
import json
from typing import Any

import pytest
from devstack.lambda_runtime import http_event
from devstack.stack import WEBHOOK_HMAC_KEY, Stack
from tests.integration.conftest import counted, post_callback, printed, send, serve

from kie2s3.models import COPIES_FORMS

TASK_ID_PATTERN = "'^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$'"


def post_copies(raw: str | bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    event = http_event("POST", "/copies", body=raw, headers=headers)
    if headers is not None and "content-type" not in {k.lower() for k in headers}:
        del event["headers"]["content-type"]
    return send(event)


def market(task_id: str, urls: list[str]) -> dict[str, Any]:
    result = json.dumps({"resultUrls": urls})
    return {"code": 200, "data": {"taskId": task_id, "state": "success", "resultJson": result}}


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "text/plain", "application/octet-stream"],
    ids=["curl-d", "text", "binary"],
)
def test_copies_reads_the_body_as_json_whatever_its_content_type(
    inline_mode: Stack, task_id: str, content_type: str
) -> None:
    served = serve(inline_mode, task_id, [(".png", 4096)])
    raw = json.dumps({"taskId": task_id, "urls": list(served)})
    status, doc = post_copies(raw, {"content-type": content_type})
    assert (status, doc["state"]) == (200, "copied"), doc


def test_copies_without_a_content_type_reads_the_body_as_json(inline_mode: Stack, task_id: str) -> None:
    # The gateway hands a body without a content-type on in base64.
    served = serve(inline_mode, task_id, [(".png", 4096)])
    raw = json.dumps({"taskId": task_id, "urls": list(served)}).encode()
    event = http_event("POST", "/copies", body=base64.b64encode(raw))
    del event["headers"]["content-type"]
    event["isBase64Encoded"] = True
    status, doc = send(event)
    assert (status, doc["state"]) == (200, "copied"), doc


@pytest.mark.parametrize(
    "raw",
    ['{"taskId": "abc", ', "not json at all", "", "[1, 2]", '"a string"', "10"],
    ids=["cut-short", "text", "empty", "array", "string", "number"],
)
def test_copies_answers_a_body_it_cannot_read_as_the_callback_route_does(
    queue_mode: Stack, task_id: str, raw: str
) -> None:
    copies = post_copies(raw)
    callback = post_callback(raw, task_id)  # type: ignore[arg-type]
    assert copies[0] == callback[0] == 400
    assert copies[1] == callback[1], (copies, callback)
    assert copies[1]["message"] in ("body is not JSON", "body is not a JSON object")


@pytest.mark.parametrize(
    "body",
    [{}, {"urls": ["https://tempfile.aiquickdraw.com/p/a.png"]}, {"family": "market"}],
    ids=["empty", "urls-alone", "family-alone"],
)
def test_copies_body_of_neither_form_says_which_forms_exist(queue_mode: Stack, body: dict[str, Any]) -> None:
    status, answer = post_copies(json.dumps(body))
    assert status == 400
    assert answer == {"message": COPIES_FORMS, "details": []}
    assert COPIES_FORMS == "give taskId with urls (or with family), or taskIds with family"


@pytest.mark.parametrize(
    ("body", "details"),
    [
        ({"taskId": "no spaces"}, [f"taskId: String should match pattern {TASK_ID_PATTERN}"]),
        (
            {"taskIds": ["fine", "not fine"], "family": "market"},
            [f"taskIds[1]: String should match pattern {TASK_ID_PATTERN}"],
        ),
        ({"taskId": "abc", "urls": []}, ["urls: List should have at least 1 item after validation, not 0"]),
        (
            {"taskId": "abc", "taskIds": ["abc"], "family": "market"},
            ["body: give either `taskIds` (bulk, by record-info) or `taskId` (one task), not both"],
        ),
    ],
    ids=["task-id", "bulk-task-id", "no-urls", "both-forms"],
)
def test_copies_details_name_fields_as_the_caller_wrote_them(
    queue_mode: Stack, body: dict[str, Any], details: list[str]
) -> None:
    status, answer = post_copies(json.dumps(body))
    assert (status, answer) == (400, {"message": "invalid request", "details": details})


def test_get_task_details_name_the_path_parameter(queue_mode: Stack) -> None:
    event = http_event(
        "GET", "/tasks/a%20b", route="/tasks/{taskId}", path_parameters={"taskId": "a b"}, body=None
    )
    status, answer = send(event)
    assert (status, answer["details"]) == (
        400,
        [f"path parameter taskId: String should match pattern {TASK_ID_PATTERN}"],
    )


@pytest.mark.parametrize("hint", ["markte", "a-family-hint-longer-than-any-family-name-is", " "])
def test_callback_with_an_unknown_family_hint_is_accepted_detected_warned_and_counted(
    inline_mode: Stack, task_id: str, hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    served = serve(inline_mode, task_id, [(".png", 4096)])
    with printed(capsys) as documents:
        status, doc = post_callback(
            market(task_id, list(served)), task_id, hmac_key=WEBHOOK_HMAC_KEY, query={"family": hint}
        )
    assert (status, doc["family"], doc["state"]) == (200, "market", "copied"), doc
    [warning] = [d for d in documents if str(d.get("message", "")).startswith("unknown family hint")]
    assert (warning["level"], warning["hint"]) == ("WARNING", hint)
    assert counted(documents, "FamilyHintsUnknown") == 1
    assert counted(documents, "CallbacksAccepted") == 1


def test_callback_with_a_known_family_hint_is_not_warned_about(
    inline_mode: Stack, task_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    served = serve(inline_mode, task_id, [(".png", 4096)])
    with printed(capsys) as documents:
        status, _ = post_callback(
            market(task_id, list(served)), task_id, hmac_key=WEBHOOK_HMAC_KEY, query={"family": "market"}
        )
    assert status == 200
    assert counted(documents, "FamilyHintsUnknown") == 0
    assert not [d for d in documents if str(d.get("message", "")).startswith("unknown family hint")]
