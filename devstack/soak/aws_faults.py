"""AWS faults for the soak, below the code under test: botocore's `before-send` answers some requests
with each service's real error shape instead of sending them.

Installed per process from KIE2S3_SOAK_AWS_FAULTS (`seed,rate,name`), as devstack.roundtrips's
recorder is: every boto3 client built afterwards is hooked. Which requests fail is drawn from
random.Random(seed/name), one draw per request in this process's order, so the same seed gives the
same plan per process (interleavings may differ). What was injected is printed at exit as one
`SOAK-FAULTS {json}` line.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import signal
import sys
import threading
from collections import Counter
from typing import Any, Final

ENV: Final = "KIE2S3_SOAK_AWS_FAULTS"
KILL_ENV: Final = "KIE2S3_SOAK_KILL"
# Where a process is killed: (botocore event, service, operations). Copy workers: in the middle of
# a multipart upload (a part on its way), between the upload and the ledger's write (its answer
# in), between the ledger's write and the message's delete (the mapping's DeleteMessage on its
# way). The events function: in the middle of a batch (its first PutEvents answered).
KILL_POINTS: Final = {
    "mid-part": ("before-send", "s3", frozenset({"UploadPart"})),
    "after-upload": ("after-call", "s3", frozenset({"CompleteMultipartUpload", "PutObject"})),
    "before-delete": ("before-send", "sqs", frozenset({"DeleteMessage"})),
    "mid-batch": ("after-call", "eventbridge", frozenset({"PutEvents"})),
}
_JSON_TYPE = "application/x-amz-json-1.0"
# service -> the error answers drawn from: (status, content type, body)
_S3_ERROR = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>soak</RequestId></Error>'
SHAPES: Final[dict[str, list[tuple[str, int, str, str]]]] = {
    "s3": [
        (
            "SlowDown",
            503,
            "application/xml",
            _S3_ERROR.format(code="SlowDown", message="Please reduce your request rate."),
        ),
        (
            "InternalError",
            500,
            "application/xml",
            _S3_ERROR.format(
                code="InternalError", message="We encountered an internal error. Please try again."
            ),
        ),
        (
            "ServiceUnavailable",
            503,
            "application/xml",
            _S3_ERROR.format(code="ServiceUnavailable", message="Service is unable to handle request."),
        ),
    ],
    "dynamodb": [
        (
            "ThrottlingException",
            400,
            _JSON_TYPE,
            json.dumps(
                {
                    "__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                    "message": "Rate of requests exceeds the allowed throughput.",
                }
            ),
        ),
        (
            "InternalServerError",
            500,
            _JSON_TYPE,
            json.dumps(
                {
                    "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
                    "message": "Internal server error",
                }
            ),
        ),
    ],
    "sqs": [
        (
            "InternalError",
            500,
            _JSON_TYPE,
            json.dumps(
                {"__type": "com.amazonaws.sqs#InternalError", "message": "We encountered an internal error."}
            ),
        ),
    ],
    "eventbridge": [
        (
            "InternalException",
            500,
            "application/x-amz-json-1.1",
            json.dumps({"__type": "InternalException", "message": "Internal error"}),
        ),
    ],
    "secrets-manager": [
        (
            "ThrottlingException",
            400,
            "application/x-amz-json-1.1",
            json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}),
        ),
    ],
}


# "Applied, answer lost": these requests reach moto, then the client sees the connection close
# (botocore retries: the write is applied twice, or answered by its condition).
LOST_ANSWERS: Final = frozenset(
    {
        ("dynamodb", "PutItem"),
        ("dynamodb", "UpdateItem"),
        ("dynamodb", "DeleteItem"),
        ("dynamodb", "TransactWriteItems"),
        ("dynamodb", "BatchWriteItem"),
        ("s3", "CompleteMultipartUpload"),
        ("sqs", "DeleteMessage"),
        ("eventbridge", "PutEvents"),
    }
)


class _Raw:
    """What botocore reads an answer's body from (`raw.stream()`)."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


class Scope(threading.local):
    """One invocation's view of the faults, per thread: whether this thread runs the function now
    (a scoped AwsFaults lets every other request through: the soak's own reads and writes), and
    the services that answered it with a fault."""

    def __init__(self) -> None:
        self.active = False
        self.failed: set[str] = set()


class AwsFaults:
    """Answers a drawn share of this process's AWS requests with an error of the service's real shape.

    With `scoped`, only requests made while `scope.active` (an invocation of the function in this
    thread) are drawn for. A service in `down` (an outage) answers every request with a fault.
    """

    def __init__(
        self,
        seed: int,
        rate: float,
        name: str,
        *,
        scoped: bool = False,
        down: frozenset[str] = frozenset(),
        lost_only: bool = False,
    ) -> None:
        self._random = random.Random(f"{seed}/{name}")
        self._rate = rate
        self._lock = threading.Lock()
        self._scoped = scoped
        self._down = down
        self._lost_only = lost_only  # Lambda's event source mapping: its DeleteMessage only
        self._session: Any = None
        # TransactWriteItems tokens whose call succeeded and its answer was lost: DynamoDB answers
        # a retry with the same ClientRequestToken (botocore keeps it across a call's attempts) as
        # the first call, without applying it again; moto does not, so the fault layer does. A
        # cancelled call wrote nothing: its retry is sent (and may be cancelled again).
        self._applied_tokens: set[str] = set()
        self.scope = Scope()
        self.requests = 0
        self.injected: Counter[str] = Counter()

    def before_send(self, request: Any, event_name: str, **_: Any) -> Any:
        """None (send it), an error answer of the service's shape, or the request applied and a
        connection error raised (botocore counts it as one it retries)."""
        from botocore.exceptions import ConnectionClosedError

        if self._scoped and not self.scope.active:
            return None
        service, operation = event_name.split(".", 2)[1:]
        token = (
            _request_token(request) if (service, operation) == ("dynamodb", "TransactWriteItems") else None
        )
        if token is not None and token in self._applied_tokens:
            return _answer(request, 200, _JSON_TYPE, "{}")  # DynamoDB's answer to a repeated token
        kind = self._draw(service, operation)
        if kind is None:
            return None
        self.scope.failed.add(service)
        if kind == "lost":
            if self._apply(request) and token is not None:
                self._applied_tokens.add(token)
            raise ConnectionClosedError(endpoint_url=request.url)
        return _error_answer(request, service, kind)

    def _draw(self, service: str, operation: str) -> str | None:
        """What this request gets: None, "lost", or the code of an error shape (one set of draws a request)."""
        shapes = SHAPES.get(service, [])
        lossy = (service, operation) in LOST_ANSWERS
        with self._lock:
            self.requests += 1
            draw, pick, lose = self._random.random(), self._random.random(), self._random.random()
            if self._lost_only and not lossy:
                return None
            if service in self._down and shapes:
                code = shapes[int(pick * len(shapes))][0]
            elif draw >= self._rate or not (shapes or lossy):
                return None
            elif lossy and (lose < 0.5 or self._lost_only or not shapes):
                code = "lost"
            else:
                code = shapes[int(pick * len(shapes))][0]
            self.injected[f"{service} {operation} {'applied, answer lost' if code == 'lost' else code}"] += 1
            return code

    def _apply(self, request: Any) -> bool:
        """Send the request as botocore would have (its answer is dropped); whether it succeeded."""
        from botocore.httpsession import URLLib3Session

        with self._lock:
            if self._session is None:
                self._session = URLLib3Session()
        answer = self._session.send(request)
        request.reset_stream()
        return bool(answer.status_code == 200)

    def for_mapping(self) -> AwsFaults:
        """The lost answers of Lambda's event source mapping (its DeleteMessage), counted with these."""
        mapping = AwsFaults(0, self._rate, "mapping", lost_only=True)
        mapping._random, mapping._lock, mapping.injected = self._random, self._lock, self.injected
        return mapping

    def summary(self) -> dict[str, Any]:
        return {"requests": self.requests, "injected": dict(self.injected)}


def _request_token(request: Any) -> str | None:
    """A TransactWriteItems request's ClientRequestToken."""
    try:
        body = request.body if isinstance(request.body, bytes | str) else b""
        token = json.loads(body or b"{}").get("ClientRequestToken")
    except ValueError:
        return None
    return str(token) if token else None


def _error_answer(request: Any, service: str, code: str) -> Any:
    status, content_type, body = next((st, ct, b) for c, st, ct, b in SHAPES[service] if c == code)
    extra = {"x-amzn-query-error": f"{code};Receiver"} if service == "sqs" else {}
    return _answer(request, status, content_type, body, extra)


def _answer(
    request: Any, status: int, content_type: str, body: str, extra: dict[str, str] | None = None
) -> Any:
    from botocore.awsrequest import AWSResponse, HTTPHeaders

    headers = HTTPHeaders()
    headers["Content-Type"] = content_type
    headers["x-amzn-RequestId"] = "soak"
    for name, value in (extra or {}).items():
        headers[name] = value
    return AWSResponse(request.url, status, headers, _Raw(body.encode()))


class Kill:
    """SIGKILL of this process at a named point, the `nth` time the transport reaches it: what a
    Lambda container's crash (out of memory, a host lost) leaves half done. Before dying it prints
    `SOAK-KILL <point>` and its faults' summary (atexit handlers do not run)."""

    def __init__(self, point: str, nth: int, faults: AwsFaults | None = None) -> None:
        if point not in KILL_POINTS:
            raise ValueError(f"unknown kill point {point!r}: one of {sorted(KILL_POINTS)}")
        self.point, self._nth, self._faults = point, nth, faults
        self._event, self._service, self._operations = KILL_POINTS[point]
        self._seen = 0
        self._lock = threading.Lock()

    def hook(self, client: Any) -> None:
        """Watch this client's requests for the point."""
        client.meta.events.register(f"{self._event}.{self._service}", self._reached)

    def _reached(self, event_name: str, **_: Any) -> None:
        if event_name.rsplit(".", 1)[-1] not in self._operations:
            return
        with self._lock:
            self._seen += 1
            if self._seen != self._nth:
                return
            print(f"SOAK-KILL {self.point}", file=sys.__stdout__, flush=True)
            if self._faults is not None:
                print("SOAK-FAULTS " + json.dumps(self._faults.summary()), file=sys.__stdout__, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)


def install(faults: AwsFaults | None, kill: Kill | None = None) -> None:
    """Hook every boto3 client built from now on in this process."""
    from botocore.client import ClientCreator

    create_client = ClientCreator.create_client

    def hooked(creator: ClientCreator, *args: Any, **kwargs: Any) -> Any:
        client = create_client(creator, *args, **kwargs)
        if faults is not None:
            client.meta.events.register("before-send", faults.before_send)
        if kill is not None:
            kill.hook(client)
        return client

    ClientCreator.create_client = hooked  # type: ignore[method-assign,assignment]


def from_spec(spec: str) -> AwsFaults:
    """The faults a KIE2S3_SOAK_AWS_FAULTS value names: `seed,rate,name[,down]`, `down` the services
    of an outage joined by `+`."""
    seed, rate, name, *down = spec.split(",", 3)
    outage = frozenset(down[0].split("+")) if down and down[0] else frozenset()
    return AwsFaults(int(seed), float(rate), name, down=outage)


def kill_from_spec(spec: str, faults: AwsFaults | None = None) -> Kill:
    """The kill a KIE2S3_SOAK_KILL value names: `point,nth`."""
    point, nth = spec.split(",", 1)
    return Kill(point, int(nth), faults)


_INSTALLED: dict[str, Any] = {}


def install_from_env(environ: dict[str, str] | None = None) -> AwsFaults | None:
    """Install the faults KIE2S3_SOAK_AWS_FAULTS names and the kill KIE2S3_SOAK_KILL names, if any;
    print the faults at exit. The faults, if any."""
    env = environ if environ is not None else os.environ
    faults = from_spec(env[ENV]) if env.get(ENV) else None
    kill = kill_from_spec(env[KILL_ENV], faults) if env.get(KILL_ENV) else None
    if faults is None and kill is None:
        return None
    install(faults, kill)
    _INSTALLED.update(faults=faults, kill=kill)
    if faults is not None:
        atexit.register(
            lambda: print("SOAK-FAULTS " + json.dumps(faults.summary()), file=sys.__stdout__, flush=True)
        )
    return faults


def hook_mapping(client: Any) -> None:
    """Lambda's event source mapping's SQS client: lost answers to its DeleteMessage, and the kill
    before it (the function done, the message not yet deleted), as installed from the environment."""
    faults, kill = _INSTALLED.get("faults"), _INSTALLED.get("kill")
    if faults is not None:
        client.meta.events.register("before-send", faults.for_mapping().before_send)
    if kill is not None and kill.point == "before-delete":
        kill.hook(client)
