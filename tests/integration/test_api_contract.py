"""Every status openapi.json documents is one the API answers: a request that gets it, per route.

Over HTTP, through the local API with `make up AUTH=iam`'s SigV4 check (the gateway's 403) in front
of the real entry point, `app.lambda_handler`, whose services are the in-memory fakes (so that kie.ai
answering nonsense, or AWS failing for a moment, is one line). Callbacks are signed as kie.ai signs
them; `/copies` and `/tasks` with the project's SigV4 signer and the local API's credentials.
"""

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from devstack.call import Answer, request
from devstack.lambda_runtime import invoke
from devstack.local_api import LocalHttpApi, template_routes
from devstack.openapi import OPENAPI_PATH
from devstack.serve import CREDENTIALS_FILE, iam_check
from devstack.sigv4 import KEYS_PROFILE
from devstack.template import REGION, load_template
from tests.callback_requests import signature_headers
from tests.fakes import FILE_HOST, Fakes, make_fakes

from kie2s3.errors import UpstreamError
from kie2s3.handlers.http import MAX_BODY_BYTES

TASK = "7c1e0f3ab2d94c55a1e6f0b9d2c4a871"
MARKET_RECORD_INFO = "/api/v1/jobs/recordInfo"


class Api:
    """The local API over the fakes, and how each caller reaches it."""

    def __init__(self, server: LocalHttpApi, fakes: Fakes, credentials: Any) -> None:
        self.server = server
        self.fakes = fakes
        self.credentials = credentials

    def signed(self, method: str, route: str, body: Any = None) -> Answer:
        """A request to an IAM route, signed with SigV4 (a JSON body, or bytes as they are)."""
        raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
        return request(self.server.url, method, route, body=raw, credentials=self.credentials, region=REGION)

    def unsigned(self, method: str, route: str, body: bytes = b"") -> Answer:
        return request(self.server.url, method, route, body=body)

    def callback(self, body: Any, *, signed: bool = True) -> Answer:
        """A callback, signed as kie.ai signs it for the task it names."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = signature_headers(TASK, timestamp=time.time()) if signed else {}
        http = _Http(headers)
        return request(self.server.url, "POST", "/callbacks/kie", body=raw, http=http)


class _Http:
    """botocore's HTTP client, adding headers to what it sends (kie.ai's webhook headers)."""

    def __init__(self, headers: dict[str, str]) -> None:
        from botocore.httpsession import URLLib3Session

        self.headers = headers
        self.session = URLLib3Session()

    def send(self, prepared: Any) -> Any:
        prepared.headers.update(self.headers)
        return self.session.send(prepared)


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    from kie2s3.handlers import http

    fakes = make_fakes()
    monkeypatch.setattr(http, "get_services", lambda: fakes.services)
    server = LocalHttpApi(
        template_routes(load_template()), lambda event, name: invoke(event), authorize=iam_check(tmp_path)
    ).start()
    session = botocore.session.Session()
    session.set_config_variable("credentials_file", str(tmp_path / CREDENTIALS_FILE))
    session.set_config_variable("profile", KEYS_PROFILE)
    yield Api(server, fakes, session.get_credentials())
    server.stop()


def market(task_id: str = TASK) -> dict[str, Any]:
    urls = [f"https://{FILE_HOST}/p/{task_id}_0.png"]
    return {
        "code": 200,
        "data": {"taskId": task_id, "state": "success", "resultJson": json.dumps({"resultUrls": urls})},
    }


def copies_by_urls() -> dict[str, Any]:
    return {"taskId": TASK, "urls": [f"https://{FILE_HOST}/p/{TASK}_0.png"]}


def by_record_info() -> dict[str, Any]:
    return {"taskId": TASK, "family": "market"}


def inline(api: Api) -> Answer:
    api.fakes.with_(queue=None)
    return api.signed("POST", "/copies", copies_by_urls())


def upstream_nonsense(api: Api) -> Answer:
    api.fakes.kie.records[(MARKET_RECORD_INFO, TASK)] = {"taskId": TASK, "state": 17, "resultJson": []}
    answer = api.signed("POST", "/copies", by_record_info())
    assert answer.status == UpstreamError.status
    return answer


def kie_unavailable(api: Api) -> Answer:
    api.fakes.kie.fail("record_info", times=20)
    return api.signed("POST", "/copies", by_record_info())


def known_task(api: Api) -> Answer:
    assert api.signed("POST", "/copies", copies_by_urls()).status == 202
    return api.signed("GET", f"/tasks/{TASK}")


def ledger_unavailable(api: Api) -> Answer:
    assert api.signed("POST", "/copies", copies_by_urls()).status == 202
    api.fakes.ledger.fail("get", times=20)
    return api.signed("GET", f"/tasks/{TASK}")


TOO_LARGE = b'{"taskId": "' + b"x" * MAX_BODY_BYTES + b'"}'

# (operation, status) -> a request that gets that status.
REACHED: dict[tuple[str, int], Callable[[Api], Answer]] = {
    ("POST /callbacks/kie", 200): lambda api: api.callback(market()),
    ("POST /callbacks/kie", 400): lambda api: api.callback(b"not json"),
    ("POST /callbacks/kie", 401): lambda api: api.callback(market(), signed=False),
    ("POST /callbacks/kie", 413): lambda api: api.callback(TOO_LARGE),
    ("POST /callbacks/kie", 503): lambda api: (api.fakes.store.fail("put_raw"), api.callback(market()))[1],
    ("POST /copies", 200): inline,
    ("POST /copies", 202): lambda api: api.signed("POST", "/copies", copies_by_urls()),
    ("POST /copies", 400): lambda api: api.signed("POST", "/copies", {}),
    ("POST /copies", 403): lambda api: api.unsigned("POST", "/copies", json.dumps(copies_by_urls()).encode()),
    ("POST /copies", 404): lambda api: api.signed("POST", "/copies", by_record_info()),
    ("POST /copies", 413): lambda api: api.signed("POST", "/copies", TOO_LARGE),
    ("POST /copies", 502): upstream_nonsense,
    ("POST /copies", 503): kie_unavailable,
    ("GET /tasks/{taskId}", 200): known_task,
    ("GET /tasks/{taskId}", 400): lambda api: api.signed("GET", "/tasks/a%20b"),
    ("GET /tasks/{taskId}", 403): lambda api: api.unsigned("GET", f"/tasks/{TASK}"),
    ("GET /tasks/{taskId}", 404): lambda api: api.signed("GET", f"/tasks/{TASK}"),
    ("GET /tasks/{taskId}", 503): ledger_unavailable,
}


def documented() -> set[tuple[str, int]]:
    paths = json.loads(OPENAPI_PATH.read_text())["paths"]
    return {
        (f"{method.upper()} {path}", int(status))
        for path, operations in paths.items()
        for method, operation in operations.items()
        for status in operation["responses"]
    }


def test_every_documented_status_has_a_request_that_reaches_it() -> None:
    assert sorted(documented() - set(REACHED)) == []
    assert sorted(set(REACHED) - documented()) == []


@pytest.mark.parametrize(("operation", "status"), sorted(REACHED), ids=lambda v: str(v))
def test_documented_status_is_reached(api: Api, operation: str, status: int) -> None:
    answer = REACHED[(operation, status)](api)
    assert answer.status == status, answer.body
    document = json.loads(answer.body)
    assert isinstance(document, dict)
    if status >= 400:
        assert set(document) <= {"message", "details"}
        assert isinstance(document["message"], str)
        assert document["message"]
