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
import sys
import threading
from collections import Counter
from typing import Any, Final

ENV: Final = "KIE2S3_SOAK_AWS_FAULTS"
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
        self, seed: int, rate: float, name: str, *, scoped: bool = False, down: frozenset[str] = frozenset()
    ) -> None:
        self._random = random.Random(f"{seed}/{name}")
        self._rate = rate
        self._lock = threading.Lock()
        self._scoped = scoped
        self._down = down
        self.scope = Scope()
        self.requests = 0
        self.injected: Counter[str] = Counter()

    def before_send(self, request: Any, event_name: str, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse, HTTPHeaders

        if self._scoped and not self.scope.active:
            return None
        service, operation = event_name.split(".", 2)[1:]
        shapes = SHAPES.get(service)
        with self._lock:
            self.requests += 1
            draw, pick = self._random.random(), self._random.random()
            if not shapes or (draw >= self._rate and service not in self._down):
                return None
            code, status, content_type, body = shapes[int(pick * len(shapes))]
            self.injected[f"{service} {operation} {code}"] += 1
        self.scope.failed.add(service)
        headers = HTTPHeaders()
        headers["Content-Type"] = content_type
        headers["x-amzn-RequestId"] = "soak"
        if service == "sqs":
            headers["x-amzn-query-error"] = f"{code};Receiver"
        return AWSResponse(request.url, status, headers, _Raw(body.encode()))

    def summary(self) -> dict[str, Any]:
        return {"requests": self.requests, "injected": dict(self.injected)}


def install(faults: AwsFaults) -> None:
    """Hook every boto3 client built from now on in this process."""
    from botocore.client import ClientCreator

    create_client = ClientCreator.create_client

    def hooked(creator: ClientCreator, *args: Any, **kwargs: Any) -> Any:
        client = create_client(creator, *args, **kwargs)
        client.meta.events.register("before-send", faults.before_send)
        return client

    ClientCreator.create_client = hooked  # type: ignore[method-assign,assignment]


def from_spec(spec: str) -> AwsFaults:
    """The faults a KIE2S3_SOAK_AWS_FAULTS value names: `seed,rate,name[,down]`, `down` the services
    of an outage joined by `+`."""
    seed, rate, name, *down = spec.split(",", 3)
    outage = frozenset(down[0].split("+")) if down and down[0] else frozenset()
    return AwsFaults(int(seed), float(rate), name, down=outage)


def install_from_env(environ: dict[str, str] | None = None) -> AwsFaults | None:
    """Install the faults KIE2S3_SOAK_AWS_FAULTS names (`from_spec`), if any; print them at exit."""
    spec = (environ if environ is not None else os.environ).get(ENV, "")
    if not spec:
        return None
    faults = from_spec(spec)
    install(faults)
    atexit.register(
        lambda: print("SOAK-FAULTS " + json.dumps(faults.summary()), file=sys.__stdout__, flush=True)
    )
    return faults
