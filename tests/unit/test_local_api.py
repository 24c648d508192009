"""The local HTTP API's translation (requests to payload 2.0 events, answers back) and the schedule."""

import base64
import json
from typing import Any

import pytest
from devstack.local_api import Route, gateway_event, http_answer, template_routes
from devstack.serve import function_context, schedule_seconds, scheduled_functions, sqs_function
from devstack.template import load_template

TASKS = Route("GET", "/tasks/{taskId}", "ApiFunction", "AWS_IAM")
CALLBACK = Route("POST", "/callbacks/kie", "ApiFunction", "NONE")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def event(
    route: Route, body: bytes = b"", headers: list[tuple[str, str]] | None = None, **kw: Any
) -> dict[str, Any]:
    return gateway_event(
        route,
        method=route.method,
        raw_path=kw.get("raw_path", "/callbacks/kie"),
        raw_query=kw.get("raw_query", ""),
        headers=headers or [],
        body=body,
        path_parameters=kw.get("path_parameters", {}),
        source_ip="127.0.0.1",
        host="127.0.0.1",
    )


def test_template_routes_are_the_api_functions_with_their_authorizers(template: dict[str, Any]) -> None:
    routes = {(r.method, r.path): (r.function, r.authorizer) for r in template_routes(template)}
    assert routes == {
        ("POST", "/callbacks/kie"): ("ApiFunction", "NONE"),
        ("POST", "/copies"): ("ApiFunction", "AWS_IAM"),
        ("GET", "/tasks/{taskId}"): ("ApiFunction", "AWS_IAM"),
    }


def test_route_match_takes_path_parameters_and_nothing_else() -> None:
    assert TASKS.match("GET", "/tasks/abc-1") == {"taskId": "abc-1"}
    assert TASKS.match("GET", "/tasks/a%20b") == {"taskId": "a b"}
    assert TASKS.match("POST", "/tasks/abc") is None
    assert TASKS.match("GET", "/tasks/abc/more") is None
    assert TASKS.match("GET", "/tasks/") is None


def test_gateway_event_is_payload_2_0() -> None:
    headers = [
        ("Content-Type", "application/json"),
        ("X-Thing", "a"),
        ("x-thing", "b"),
        ("Cookie", "k=v; n=m"),
    ]
    found = event(CALLBACK, b'{"a": 1}', headers, raw_query="family=veo&token=t&family=x")
    assert found["version"] == "2.0"
    assert found["routeKey"] == "POST /callbacks/kie"
    assert found["requestContext"]["http"]["method"] == "POST"
    assert found["headers"] == {"content-type": "application/json", "x-thing": "a,b"}
    assert found["cookies"] == ["k=v", "n=m"]
    assert found["rawQueryString"] == "family=veo&token=t&family=x"
    assert found["queryStringParameters"] == {"family": "veo,x", "token": "t"}
    assert found["body"] == '{"a": 1}'
    assert found["isBase64Encoded"] is False


def test_gateway_event_base64_encodes_what_is_not_text() -> None:
    raw = b"\xff\xfe not utf-8"
    binary = event(CALLBACK, raw, [("content-type", "application/json")])
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == raw
    octets = event(CALLBACK, b"plain", [("content-type", "application/octet-stream")])
    assert octets["isBase64Encoded"] is True


def test_gateway_event_without_body_or_query_has_neither() -> None:
    found = event(TASKS, raw_path="/tasks/t1", path_parameters={"taskId": "t1"})
    assert "body" not in found
    assert "queryStringParameters" not in found
    assert found["pathParameters"] == {"taskId": "t1"}


def test_http_answer_maps_the_handler_answer() -> None:
    answer = {
        "statusCode": 202,
        "headers": {"Content-Type": "application/json"},
        "cookies": ["a=b"],
        "body": base64.b64encode(b"\x00\x01").decode(),
        "isBase64Encoded": True,
    }
    assert http_answer(answer) == (
        202,
        [("Content-Type", "application/json"), ("set-cookie", "a=b")],
        b"\x00\x01",
    )


def test_http_answer_of_a_plain_value_is_200_json() -> None:
    assert http_answer({"ok": True}) == (
        200,
        [("content-type", "application/json")],
        json.dumps({"ok": True}).encode(),
    )


def test_schedule_is_the_templates_reconciler_every_ten_minutes(template: dict[str, Any]) -> None:
    assert scheduled_functions(template) == [("ReconcilerFunction", 600.0, {"kie2s3": "reconcile"})]
    assert schedule_seconds("rate(1 hour)") == 3600
    with pytest.raises(ValueError, match="only rate"):
        schedule_seconds("cron(0 12 * * ? *)")


def test_function_context_carries_the_templates_settings(template: dict[str, Any]) -> None:
    worker = function_context(template, sqs_function(template))
    assert (worker.function_name, worker.timeout_seconds, worker.memory_limit_in_mb) == (
        "kie2s3-copy-worker",
        900.0,
        1024,
    )
    api = function_context(template, "ApiFunction")
    assert (api.function_name, api.timeout_seconds, api.memory_limit_in_mb) == ("kie2s3-api", 29.0, 512)
