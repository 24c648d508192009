"""The local stack for integration tests: moto server + kie.ai emulator, provisioned from template.yaml."""

import dataclasses
import hashlib
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from devstack.aws_calls import ENV_VARIABLE as RECORDING
from devstack.aws_calls import acting_as, deployed_function
from devstack.callbacks import callback_event, serve_result_files
from devstack.kie_emulator import SyntheticFile
from devstack.lambda_runtime import function_environment, invoke, task_status_event
from devstack.stack import WEBHOOK_HMAC_KEY, Stack, local_stack

from kie2s3.events import RECONCILE_INPUT
from kie2s3.logic import reconcile as reconciler
from kie2s3.logic.services import RetryPolicy, Services
from kie2s3.observability import logger as function_logger

# The production policy's attempts, with waits of milliseconds instead of 0.5-8 s: the tests assert
# how many attempts a fault costs, never how long the backoff between them is.
FAST_RETRY = RetryPolicy(attempts=RetryPolicy().attempts, base_seconds=0.01, cap_seconds=0.05)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with local_stack(copy_mode="queue") as running:
        yield running


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every route's use cases get the container's services with FAST_RETRY, as a test hands in its own.

    The services are still built (and reset) by the wiring from the function's environment; only the
    retry policy is swapped, and only for the handlers: `wiring.get_services()` keeps the production one.
    """
    from kie2s3.handlers import http, schedule, sqs, stream, wiring

    def services() -> Services:
        return dataclasses.replace(wiring.get_services(), retry=FAST_RETRY)

    for route in (http, schedule, sqs, stream):
        monkeypatch.setattr(route, "get_services", services)


@pytest.fixture
def queue_mode(stack: Stack) -> Iterator[Stack]:
    """The deployed configuration: callbacks enqueue, a poller plays Lambda's SQS event source."""
    with stack.function():
        yield stack


class Outbox:
    """The events of a test's own ledger writes, as a subscription on the bus receives them.

    `drain()` plays what runs deployed after a callback: the copy worker until the copy queue is
    empty, then the events function over the ledger's stream until every record is handled. moto
    delivers each event to the subscription's queue within PutEvents, so none can still be on its way.
    """

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.stream = stack.stream_poller().start()  # from the ledger's latest record: this test's writes
        stack.take_events()  # whatever an earlier test left in the subscription's queue

    def drain(self) -> list[dict[str, Any]]:
        """Copy what is queued, turn the stream into events; the events received since the last drain."""
        self.stack.poller().drain()
        self.stream.drain()
        return self.stack.take_events()


@pytest.fixture
def outbox(queue_mode: Stack) -> Outbox:
    """Queue mode, with the ledger's stream read from now on by a poller playing the events function's mapping."""
    return Outbox(queue_mode)


@pytest.fixture
def inline_mode(stack: Stack) -> Iterator[Stack]:
    """The same stack with COPY_MODE=inline: the callback copies inside the request."""
    with function_environment({**stack.env, "COPY_MODE": "inline"}):
        yield stack


@pytest.fixture
def task_id() -> str:
    return uuid.uuid4().hex


def reconcile(services: Services, now: datetime | None = None) -> reconciler.ReconcileReport:
    """A reconcile pass at a time of the test's, as the reconciler function's scheduled invocation
    runs it: its AWS calls are that function's (devstack.aws_calls, for the IAM check)."""
    with acting_as(deployed_function(RECONCILE_INPUT)):
        return reconciler.reconcile(services, now=now)


def abort_stale_uploads(services: Services, now: datetime) -> list[str]:
    """The reconciler's abort of stale multipart uploads, as its function runs it (see `reconcile`)."""
    with acting_as(deployed_function(RECONCILE_INPUT)):
        return reconciler.abort_stale_uploads(services, now)


def send(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Invoke the real handler with an HTTP event; the status code and the decoded JSON body."""
    answer = invoke(event)
    return answer["statusCode"], json.loads(answer["body"]) if answer.get("body") else {}


def without_links(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A status document's files without their presigned links (a link differs at every signing)."""
    return [{k: v for k, v in f.items() if k not in ("url", "urlExpiresAt")} for f in files]


def task_document(task_id: str) -> dict[str, Any]:
    """The task's status document through `GET /tasks/{taskId}` (which must answer 200)."""
    status, doc = send(task_status_event(task_id))
    assert status == 200, doc
    return doc


def post_callback(
    body: Mapping[str, Any], task_id: str, *, hmac_key: str | None = WEBHOOK_HMAC_KEY, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    return send(callback_event(body, task_id=task_id, hmac_key=hmac_key, **kwargs))


def serve(stack: Stack, task_id: str, specs: list[tuple[str, int]]) -> dict[str, SyntheticFile]:
    """Serve files at kie.ai-looking URLs: specs are (suffix, size)."""
    served: dict[str, SyntheticFile] = {}
    for n, (suffix, size) in enumerate(specs):
        url = f"https://tempfile.aiquickdraw.com/p/{task_id}_{n}{suffix}"
        served.update(
            serve_result_files(
                stack.emulator,
                [url],
                size=size,
                seed=int(hashlib.sha256(task_id.encode()).hexdigest()[:8], 16) + n,
            )
        )
    return served


def archived_files(stack: Stack, task_id: str) -> dict[str, int]:
    """The task's archived files (key -> size), without its archived callback bodies."""
    return {k: v for k, v in objects_under(stack, f"kie/{task_id}/").items() if "/callbacks/" not in k}


def incomplete_uploads(stack: Stack, task_id: str) -> list[Any]:
    """Multipart uploads of the task that were neither completed nor aborted."""
    uploads = stack.client("s3").list_multipart_uploads(Bucket=stack.bucket, Prefix=f"kie/{task_id}/")
    return list(uploads.get("Uploads", []))


def objects_under(stack: Stack, prefix: str) -> dict[str, int]:
    listing = stack.client("s3").list_objects_v2(Bucket=stack.bucket, Prefix=prefix)
    return {o["Key"]: o["Size"] for o in listing.get("Contents", [])}


ROOT = Path(__file__).resolve().parents[2]


def start_worker(stack: Stack, *args: str, env: Mapping[str, str] | None = None) -> "subprocess.Popen[str]":
    """A copy worker in its own process (one Lambda container) with exactly the function's env
    (`env`: another function environment, the stack's by default)."""
    env = {**(env or stack.env), "PATH": os.environ["PATH"], "PYTHONPATH": f"{ROOT / 'src/handler'}:{ROOT}"}
    if RECORDING in os.environ:  # the IAM check's recording of AWS calls (devstack.aws_calls): its too
        env[RECORDING] = os.environ[RECORDING]
    return subprocess.Popen(
        [sys.executable, "-m", "devstack.worker", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def worker_report(process: "subprocess.Popen[str]", timeout: float = 600) -> dict[str, Any]:
    """Wait for a worker and return its report line."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    line = next(line for line in out.splitlines() if line.startswith("WORKER-REPORT "))
    report: dict[str, Any] = json.loads(line.removeprefix("WORKER-REPORT "))
    return report


def ranges_for(size: int) -> int:
    """How many GETs one complete download of `size` bytes takes (the first range, then the rest)."""
    from kie2s3.logic.services import DEFAULT_SHAPE

    return max(1, -(-size // DEFAULT_SHAPE.part_bytes))


@contextmanager
def printed(capsys: pytest.CaptureFixture[str]) -> Iterator[list[dict[str, Any]]]:
    """What the function prints in the block (its log records, its EMF metrics) as JSON documents."""
    handler = function_logger.registered_handler  # bound to the sys.stdout of import time
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(sys.stdout)
    documents: list[dict[str, Any]] = []
    try:
        yield documents
    finally:
        handler.setStream(previous)
    out, _ = capsys.readouterr()
    documents.extend(json.loads(line) for line in out.splitlines() if line.startswith("{"))


def counted(documents: list[dict[str, Any]], metric: str) -> float:
    """The sum of a metric over the EMF documents printed."""
    values = [d[metric] for d in documents if "_aws" in d and metric in d]
    return sum(sum(v) if isinstance(v, list) else v for v in values)
