"""The HTTP API served locally over real HTTP: each request becomes a payload 2.0 event for the handler.

What API Gateway's HTTP API does in front of `app.lambda_handler`, as far as a local run can: the
template's routes (method and path, `{param}` segments), payload format 2.0 events (headers
lower-cased, repeated ones joined with commas, cookies apart, text bodies as text and others in
base64), the answer mapped back (a dict without `statusCode` is 200 JSON), 404 `Not Found` for a
request no route takes (whatever its method: TRACE as much as GET on an unknown path), 413 over
the gateway's 10 MB, 500 `Internal Server Error` when the function raises or Lambda refuses its
event (over 6 MB: devstack.payload), and 502 `Internal Server Error` when its answer is over Lambda's
6 MB (`Function.ResponseSizeTooLarge`). Routes the template IAM-authorises take unsigned requests here (a signature, if
any, is not checked), unless the API is given an `authorize` check (`make up AUTH=iam`: SigV4
against the local stack's own credentials, `devstack.sigv4.check`), which refuses with 403 before
the function is called; every answer of such a route carries the header `x-kie2s3-local-auth`
saying which. Up to `concurrency` requests reach the function at once (1 by default, as one Lambda
container: a function run in this process is one), each beside the others as Lambda runs concurrent
requests in containers of their own; more wait for one to finish.
"""

import base64
import json
import re
import threading
import time
import traceback
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, TextIO

from devstack.payload import RESPONSE_TOO_LARGE, FunctionError
from devstack.template import ACCOUNT_ID, FUNCTION_TYPES

# API Gateway's payload limit for HTTP APIs (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html).
MAX_PAYLOAD_BYTES: Final = 10 * 1024 * 1024
LOCAL_AUTH_HEADER: Final = "x-kie2s3-local-auth"
LOCAL_AUTH_NOTE: Final = "unsigned request accepted locally; deployed, this route is IAM-authorised (SigV4)"
LOCAL_IAM_NOTE: Final = (
    "SigV4 signature checked against the local stack's credentials (IAM policy not emulated)"
)
_TEXT_TYPES: Final = ("text/", "application/json", "application/xml", "application/x-www-form-urlencoded")

# Calls the function `name` with an event and answers what the handler returned.
Invoke = Callable[[dict[str, Any], str], Any]
# Judges a request to an IAM-authorised route: (method, URL as sent, headers, body) -> None to let it
# through, else the reason of its 403.
Authorize = Callable[[str, str, Mapping[str, str], bytes], str | None]


@dataclass(frozen=True)
class Route:
    """One HTTP API route of the template: method, path template, function and authorizer."""

    method: str
    path: str  # as the template writes it: /tasks/{taskId}
    function: str  # the logical id of the function behind it
    authorizer: str  # NONE or AWS_IAM

    @property
    def key(self) -> str:
        """The route key, as in the event: `GET /tasks/{taskId}`."""
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters when the request takes this route, else None."""
        if method != self.method:
            return None
        pattern = "".join(
            f"(?P<{part[1:-2]}>.+)"
            if part.startswith("{") and part.endswith("+}")
            else f"(?P<{part[1:-1]}>[^/]+)"
            if part.startswith("{")
            else re.escape(part)
            for part in re.split(r"(\{[^}]+\})", self.path)
            if part
        )
        found = re.fullmatch(pattern, path)
        if found is None:
            return None
        return {name: urllib.parse.unquote(value) for name, value in found.groupdict().items()}


def template_routes(template: Mapping[str, Any]) -> list[Route]:
    """Every HttpApi event of the template's functions, with its authorizer (the API's default if unset)."""
    resources: Mapping[str, Any] = template.get("Resources") or {}
    routes = []
    for logical_id, resource in resources.items():
        if resource.get("Type") not in FUNCTION_TYPES:
            continue
        for event in ((resource.get("Properties") or {}).get("Events") or {}).values():
            if event.get("Type") != "HttpApi":
                continue
            props = event.get("Properties") or {}
            api = _api_of(resources, props.get("ApiId"))
            default = ((api.get("Properties") or {}).get("Auth") or {}).get("DefaultAuthorizer", "NONE")
            authorizer = (props.get("Auth") or {}).get("Authorizer", default)
            routes.append(
                Route(str(props["Method"]).upper(), str(props["Path"]), logical_id, str(authorizer))
            )
    return routes


def _api_of(resources: Mapping[str, Any], api_id: Any) -> Mapping[str, Any]:
    if isinstance(api_id, dict) and "Ref" in api_id:
        found: Mapping[str, Any] = resources.get(api_id["Ref"]) or {}
        return found
    return {}


def gateway_event(
    route: Route,
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    path_parameters: Mapping[str, str],
    source_ip: str,
    host: str,
) -> dict[str, Any]:
    """The payload 2.0 event API Gateway's HTTP API sends for this request."""
    joined, cookies = _headers_and_cookies(headers)
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": joined,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".", 1)[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": joined.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route.key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if raw_query:
        event["queryStringParameters"] = _joined(urllib.parse.parse_qsl(raw_query, keep_blank_values=True))
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body:
        text = _text(body, joined.get("content-type", ""))
        event["body"] = text if text is not None else base64.b64encode(body).decode()
        event["isBase64Encoded"] = text is None
    return event


def _joined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Repeated names' values joined with commas, as API Gateway joins headers and query parameters."""
    joined: dict[str, str] = {}
    for name, value in pairs:
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined


def _headers_and_cookies(headers: Iterable[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """The headers by lower-case name (repeats joined), and the cookies, which payload 2.0 sets apart."""
    headers = list(headers)
    cookies = [c.strip() for name, value in headers if name.lower() == "cookie" for c in value.split(";")]
    joined = _joined((name.lower(), value) for name, value in headers if name.lower() != "cookie")
    return joined, [cookie for cookie in cookies if cookie]


def _text(body: bytes, content_type: str) -> str | None:
    """The body as text where API Gateway passes it so (a textual type, valid UTF-8), else None: base64."""
    lowered = content_type.lower()
    textual = lowered.startswith(_TEXT_TYPES) or lowered.split(";")[0].endswith("+json")
    try:
        return body.decode() if textual else None
    except UnicodeDecodeError:
        return None


def http_answer(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """The HTTP response API Gateway makes of a payload 2.0 answer: status, headers, body."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return 200, [("content-type", "application/json")], json.dumps(result).encode()
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((str(name), str(v)) for v in values)
    headers.extend(("set-cookie", str(c)) for c in result.get("cookies") or [])
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    return int(result["statusCode"]), headers, raw


class LocalHttpApi:
    """The HTTP API on a loopback port, in background threads; `invoke` runs the function."""

    def __init__(
        self,
        routes: list[Route],
        invoke: Invoke,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        access_log: TextIO | None = None,
        authorize: Authorize | None = None,
        concurrency: int = 1,
    ) -> None:
        self.routes = routes
        self.invoke = invoke
        self.authorize = authorize
        self.access_log = access_log
        self._containers = threading.BoundedSemaphore(concurrency)
        self._log_lock = threading.Lock()
        self._server = _Server((host, port), self)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    def start(self) -> "LocalHttpApi":
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="local-http-api",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def route(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route a request takes, with its path parameters."""
        for route in self.routes:
            parameters = route.match(method, path)
            if parameters is not None:
                return route, parameters
        return None

    def call(self, event: dict[str, Any], route: Route) -> tuple[int, list[tuple[str, str]], bytes]:
        """Invoke the route's function (up to `concurrency` at once) and map its answer."""
        with self._containers:
            try:
                result = self.invoke(event, route.function)
            except FunctionError as exc:
                traceback.print_exc()
                # The function ran and its answer failed (too large): the gateway's 502. Anything
                # else, the invocation itself failed: its 500.
                return _gateway_error(
                    502 if exc.error_type == RESPONSE_TOO_LARGE else 500, "Internal Server Error"
                )
            except Exception:
                traceback.print_exc()
                return _gateway_error(500, "Internal Server Error")
        try:
            return http_answer(result)
        except (TypeError, ValueError, KeyError):
            traceback.print_exc()
            return _gateway_error(502, "Internal Server Error")

    def log_access(self, record: dict[str, Any]) -> None:
        """One JSON line per request, like the deployed API's access log."""
        if self.access_log is not None:
            with self._log_lock:
                print(json.dumps({"localApi": "access", **record}), file=self.access_log, flush=True)


def _gateway_error(status: int, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("content-type", "application/json")], json.dumps({"message": message}).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: LocalHttpApi) -> None:
        self.api = api
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kie2s3-local-api/1.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one JSON line per request instead (LocalHttpApi.log_access)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, CONNECT, PROPFIND, ...) takes no route: the gateway's 404, where
        # http.server would answer 501 for a method it has no do_<METHOD> for.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def _read_body(self) -> bytes | None:
        """The body, or None when it is larger than the gateway takes (read all the same, so that
        the client hears the 413 rather than a reset connection)."""
        parts: list[bytes] = []
        size = 0

        def keep(data: bytes) -> None:
            nonlocal size
            size += len(data)
            if size <= MAX_PAYLOAD_BYTES:
                parts.append(data)

        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while chunk := int(self.rfile.readline(1024).split(b";", 1)[0].strip() or b"0", 16):
                while chunk > 0:
                    data = self.rfile.read(min(chunk, 1 << 20))
                    if not data:
                        break
                    keep(data)
                    chunk -= len(data)
                self.rfile.readline(1024)
            while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining > 0 and (data := self.rfile.read(min(remaining, 1 << 20))):
                keep(data)
                remaining -= len(data)
        return None if size > MAX_PAYLOAD_BYTES else b"".join(parts)

    def _iam_refusal(self, api: LocalHttpApi, route: Route, body: bytes) -> str | None:
        """Why `api.authorize` refuses this request to an IAM-authorised route (None: let it through)."""
        if api.authorize is None or route.authorizer != "AWS_IAM":
            return None
        url = f"http://{self.headers.get('Host', '')}{self.path}"
        return api.authorize(self.command, url, dict(self.headers.items()), body)

    def _serve(self) -> None:
        api: LocalHttpApi = self.server.api  # type: ignore[attr-defined]
        started = time.monotonic()
        split = urllib.parse.urlsplit(self.path)
        method = self.command
        body = self._read_body()
        found = api.route(method, split.path)
        extra: list[tuple[str, str]] = []
        auth = "unsigned (IAM when deployed)" if api.authorize is None else "sigv4"
        if body is None:
            self.close_connection = True
            status, headers, raw = _gateway_error(413, "Request Entity Too Large")
            route_key = "-"
        elif found is None:
            status, headers, raw = _gateway_error(404, "Not Found")
            route_key = "-"
        else:
            route, parameters = found
            route_key = route.key
            event = gateway_event(
                route,
                method=method,
                raw_path=split.path,
                raw_query=split.query,
                headers=self.headers.items(),
                body=body,
                path_parameters=parameters,
                source_ip=self.client_address[0],
                host=self.headers.get("Host", "localhost").split(":", 1)[0],
            )
            refusal = self._iam_refusal(api, route, body)
            if refusal is not None:
                status, headers, raw = _gateway_error(403, refusal)
                auth = f"refused: {refusal}"
            else:
                status, headers, raw = api.call(event, route)
            if route.authorizer == "AWS_IAM":
                extra.append(
                    (LOCAL_AUTH_HEADER, LOCAL_AUTH_NOTE if api.authorize is None else LOCAL_IAM_NOTE)
                )
        self.send_response(status)
        sent = {name.lower() for name, _ in headers}
        for name, value in [*headers, *extra]:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        if "content-type" not in sent:
            self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(raw)
        api.log_access(
            {
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "ip": self.client_address[0],
                "method": method,
                "path": split.path,
                "routeKey": route_key,
                "status": status,
                "bytes": len(raw),
                "ms": round((time.monotonic() - started) * 1000),
                **({"auth": auth} if extra else {}),
            }
        )
