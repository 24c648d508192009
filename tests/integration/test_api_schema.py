"""schemathesis against the committed openapi.json, through the real handler in-process (inline mode).

Each generated case becomes an API Gateway HTTP API 2.0 event; the answer must not be a 5xx and
must conform to the document (documented status, content type, response schema). Valid and
invalid inputs both, 50 examples per operation and mode, derandomized: the same cases every run.
"""

import base64
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from devstack.lambda_runtime import http_event, invoke
from devstack.openapi import OPENAPI_PATH
from devstack.stack import Stack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, Response, checks

SCHEMA = schemathesis.openapi.from_path(OPENAPI_PATH)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
BASE_URL = "https://api.example"


def _event(request: dict[str, Any], route: str) -> dict[str, Any]:
    """The HTTP API event a gateway would send for this request."""
    body = request.get("data")
    if "json" in request:
        body = json.dumps(request["json"])
    query = {
        k: ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in request["params"].items()
    }
    headers = {k: str(v) for k, v in request["headers"].items()}
    path = urlsplit(request["url"]).path
    binary = isinstance(body, bytes) and not _is_utf8(body)
    if binary:  # the gateway passes a body that is not text base64-encoded
        body = base64.b64encode(body).decode()
    event = http_event(request["method"], path, body=body, headers=headers, query=query, route=route)
    event["isBase64Encoded"] = binary
    return event


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


def _response(answer: dict[str, Any], request: dict[str, Any]) -> Response:
    headers = {k.lower(): [str(v)] for k, v in (answer.get("headers") or {}).items()}
    return Response(
        status_code=answer["statusCode"],
        headers=headers,
        content=(answer.get("body") or "").encode(),
        request=requests.Request(
            method=request["method"],
            url=request["url"],
            headers=request["headers"],
            params=request["params"],
            json=request.get("json"),
            data=request.get("data"),
        ).prepare(),
        elapsed=0.0,
        verify=True,
    )


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: f"{op.method.upper()} {op.path}")
def test_api_answers_conform_to_openapi(inline_mode: Stack, operation: Any, mode: GenerationMode) -> None:
    seen: list[int] = []

    @settings(
        max_examples=50,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode))
        request = case.as_transport_kwargs(base_url=BASE_URL)
        answer = invoke(_event(request, operation.path))
        seen.append(answer["statusCode"])
        case.validate_response(_response(answer, request), checks=CHECKS)

    check()
    assert seen, "no case was generated"
    assert max(seen) < 500
