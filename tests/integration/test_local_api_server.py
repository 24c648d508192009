"""The local HTTP API over loopback, with a stand-in function: what the gateway itself answers."""

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from devstack.local_api import LOCAL_AUTH_HEADER, LocalHttpApi, Route

ROUTES = [
    Route("POST", "/callbacks/kie", "ApiFunction", "NONE"),
    Route("GET", "/tasks/{taskId}", "ApiFunction", "AWS_IAM"),
]


@pytest.fixture
def api() -> Iterator[tuple[LocalHttpApi, list[dict[str, Any]]]]:
    events: list[dict[str, Any]] = []

    def function(event: dict[str, Any], name: str) -> Any:
        events.append(event)
        if event["rawPath"] == "/tasks/boom":
            raise RuntimeError("the function failed")
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": '{"seen": true}'}

    server = LocalHttpApi(ROUTES, function).start()
    yield server, events
    server.stop()


def fetch(url: str, data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def test_a_request_becomes_one_event_for_the_function(api: tuple[LocalHttpApi, list[dict[str, Any]]]) -> None:
    server, events = api
    status, headers, body = fetch(f"{server.url}/tasks/t1?x=1")
    assert (status, json.loads(body)) == (200, {"seen": True})
    [event] = events
    assert event["routeKey"] == "GET /tasks/{taskId}"
    assert event["pathParameters"] == {"taskId": "t1"}
    assert event["queryStringParameters"] == {"x": "1"}
    assert headers[LOCAL_AUTH_HEADER].startswith("unsigned request accepted locally")


def test_callbacks_carry_no_local_auth_note(api: tuple[LocalHttpApi, list[dict[str, Any]]]) -> None:
    server, _ = api
    status, headers, _ = fetch(f"{server.url}/callbacks/kie", b"{}")
    assert status == 200
    assert LOCAL_AUTH_HEADER not in headers


def test_no_route_is_the_gateways_404(api: tuple[LocalHttpApi, list[dict[str, Any]]]) -> None:
    server, events = api
    assert fetch(f"{server.url}/copies/extra")[0::2] == (404, b'{"message": "Not Found"}')
    assert fetch(f"{server.url}/callbacks/kie")[0] == 404  # GET: no such route either
    assert events == []


def test_a_function_that_raises_is_the_gateways_500(api: tuple[LocalHttpApi, list[dict[str, Any]]]) -> None:
    server, _ = api
    assert fetch(f"{server.url}/tasks/boom")[0::2] == (500, b'{"message": "Internal Server Error"}')


@pytest.mark.parametrize(
    "method", ["TRACE", "CONNECT", "PROPFIND", "DELETE", "PUT", "PATCH", "OPTIONS", "BREW"]
)
def test_an_undeclared_method_is_the_gateways_404(
    api: tuple[LocalHttpApi, list[dict[str, Any]]], method: str
) -> None:
    # API Gateway's HTTP API answers a method no route declares 404 Not Found, as an unknown path;
    # http.server's own answer would be 501 Not Implemented.
    server, events = api
    for path in ("/tasks/t1", "/callbacks/kie", "/nowhere"):
        request = urllib.request.Request(f"{server.url}{path}", method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                status, body = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        assert (status, json.loads(body)) == (404, {"message": "Not Found"}), (method, path)
    assert events == []


def test_requests_reach_the_function_up_to_its_concurrency_at_once() -> None:
    # Lambda runs concurrent requests in containers of their own: three at once here, never four.
    barrier = threading.Barrier(3)
    in_flight, most = 0, 0
    lock = threading.Lock()

    def function(event: dict[str, Any], name: str) -> Any:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        try:
            barrier.wait(timeout=5)  # broken unless three are in the function at once
        except threading.BrokenBarrierError:
            return {"statusCode": 504}
        finally:
            with lock:
                in_flight -= 1
        return {"statusCode": 200, "body": "{}"}

    server = LocalHttpApi(ROUTES, function, concurrency=3).start()
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(lambda _: fetch(f"{server.url}/callbacks/kie", b"{}")[0], range(6)))
    finally:
        server.stop()
    assert answers == [200] * 6
    assert most == 3
