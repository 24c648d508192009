"""Forwarding accepted callbacks to the user's own handler: a real receiver on loopback, the real handler.

The forward queue is played by a poller that delivers a waiting or failed job again at once; the
forwarder's clock (and the receiver's) is moved by the tests instead of waited for.
"""

import base64
import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from devstack.callbacks import callback_event, load_event, market_body
from devstack.forward_receiver import HANG, ForwardReceiver
from devstack.lambda_runtime import SqsPoller, function_environment
from devstack.redrive import redrive
from devstack.stack import FORWARD_HMAC_KEY, WEBHOOK_HMAC_KEY, Stack
from tests.integration.conftest import (
    FAST_RETRY,
    counted,
    objects_under,
    post_callback,
    printed,
    send,
    serve,
    start_worker,
    task_document,
    without_links,
    worker_report,
)

from kie2s3.errors import AuthenticationError, RetryLaterError
from kie2s3.handlers import http, sqs, wiring
from kie2s3.logic.forward import forward_callback
from kie2s3.logic.services import Services
from kie2s3.models import ForwardJob
from kie2s3.observability import metrics
from kie2s3.retries import FORWARD_MAX_RECEIVE_COUNT, ForwardPolicy
from kie2s3.signature import verify_signature

# The stack's WEBHOOK_TOLERANCE_SECONDS (template default), which the receiver verifies with too.
TOLERANCE = 300
# A hung target costs each attempt this long: the production policy's delays, a short timeout.
FAST_FORWARD = ForwardPolicy(timeout_seconds=0.2)


class Clock:
    """The forwarder's and the receiver's clock: now, until a test moves it."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclasses.dataclass
class Forwarding:
    """A stack forwarding to `receiver`, with the forward queue's poller, the clock and the policy."""

    stack: Stack
    receiver: ForwardReceiver
    clock: Clock
    poller: SqsPoller
    policy: ForwardPolicy = FAST_FORWARD

    def drain(self) -> None:
        """Deliver forward jobs until the queue holds none (forwarded, dropped or dead-lettered)."""
        self.poller.drain(timeout=60)

    def poll(self) -> int:
        """One delivery of the next forward job (0: none was visible)."""
        return self.poller.poll_once(wait_seconds=0)

    def dead_letters(self, *, remove: bool = False) -> list[dict[str, Any]]:
        """The forward jobs in the forward dead-letter queue (left there unless `remove`)."""
        client = self.stack.client("sqs")
        url = dead_letter_queue_url(self.stack)
        answer = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        messages = answer.get("Messages", [])
        for message in messages if remove else []:
            client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return [json.loads(message["Body"]) for message in messages]


def dead_letter_queue_url(stack: Stack) -> str:
    name = stack.aws.physical_ids["ForwardDeadLetterQueue"].rsplit("/", 1)[-1]
    url: str = stack.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]
    return url


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def receiver(clock: Clock) -> Iterator[ForwardReceiver]:
    with ForwardReceiver(FORWARD_HMAC_KEY, clock=clock, tolerance=TOLERANCE) as running:
        yield running


def _forwarding_services(monkeypatch: pytest.MonkeyPatch, harness: Forwarding) -> None:
    """The handlers' services with the harness's clock and policy (and FAST_RETRY, as conftest's)."""

    def services() -> Services:
        base = dataclasses.replace(wiring.get_services(), retry=FAST_RETRY)
        if base.forwarding is None:
            return base
        forwarding = dataclasses.replace(base.forwarding, clock=harness.clock, policy=harness.policy)
        return dataclasses.replace(base, forwarding=forwarding)

    for route in (http, sqs):
        monkeypatch.setattr(route, "get_services", services)


@contextmanager
def forwarding_to(
    stack: Stack, receiver: ForwardReceiver, clock: Clock, monkeypatch: pytest.MonkeyPatch, url: str
) -> Iterator[Forwarding]:
    """The session's stack with FORWARD_URL set (its forward queue and key are always there)."""
    with function_environment({**stack.env, "FORWARD_URL": url}):
        forwarding = Forwarding(stack, receiver, clock, stack.forward_poller())
        _forwarding_services(monkeypatch, forwarding)
        yield forwarding
        # Nothing is left for the next test: its jobs would go to that test's receiver.
        receiver.answer = None
        forwarding.drain()
        forwarding.dead_letters(remove=True)


@pytest.fixture
def forwarding(
    stack: Stack, receiver: ForwardReceiver, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Forwarding]:
    """Forwarding to the receiver."""
    with forwarding_to(stack, receiver, clock, monkeypatch, receiver.url()) as running:
        yield running


def kie_signature(key: str, task_id: str, timestamp: str) -> str:
    """kie.ai's scheme, written out here rather than taken from kie2s3 (kie-api.md §3)."""
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def failed_task(task_id: str) -> dict[str, Any]:
    """A failed Market task: nothing to copy, so forwarded at once."""
    return market_body(task_id, [], state="fail", code=501)


def raw_body(stack: Stack, task_id: str) -> bytes:
    """The task's one archived callback body."""
    [key] = list(objects_under(stack, f"kie/{task_id}/callbacks/"))
    body: bytes = stack.client("s3").get_object(Bucket=stack.bucket, Key=key)["Body"].read()
    return body


# ---------------------------------------------------------------------------- what is forwarded


def test_forward_is_kie_json_plus_status_document_signed_as_kie_signs(
    forwarding: Forwarding, task_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stack, receiver = forwarding.stack, forwarding.receiver
    served = serve(stack, task_id, [(".png", 4096), (".mp4", 300_000)])
    # kie.ai's own spelling, which a re-serialisation would change: spacing, 1.50, an escape.
    text = '{"price" :1.50,  "note":"caf\\u00e9",' + json.dumps(market_body(task_id, list(served)))[1:] + "\n"
    original = json.loads(text)
    status, _ = post_callback(text, task_id)
    assert status == 200
    assert raw_body(stack, task_id) == text.encode()
    with printed(capsys) as documents:
        assert forwarding.poll() == 1  # its files are still pending: the job waits
        assert receiver.received == []
        stack.poller().drain()
        forwarding.drain()
    [got] = receiver.received
    # The exact bytes kie.ai sent, up to the closing brace, then the one added field.
    assert got.body.startswith(text.rstrip()[:-1].encode() + b',"kie2s3":')
    forwarded = got.json()
    assert list(forwarded) == [*original, "kie2s3"]
    assert {k: v for k, v in forwarded.items() if k != "kie2s3"} == original
    document = forwarded["kie2s3"]
    current = task_document(task_id)
    assert document["state"] == current["state"] == "copied"
    assert without_links(document["files"]) == without_links(current["files"])
    for file in document["files"]:  # presigned links, as GET /tasks gives them
        assert parse_qs(urlsplit(file["url"]).query)["X-Amz-Expires"] == ["3600"]
    # Signed as kie.ai signs, with the forwarding key, at the forwarder's time.
    timestamp = got.headers["x-webhook-timestamp"]
    assert timestamp == str(int(forwarding.clock()))
    assert got.headers["x-webhook-signature"] == kie_signature(FORWARD_HMAC_KEY, task_id, timestamp)
    assert got.verified, got.reason  # kie2s3's own verifier agrees
    assert got.headers["content-type"] == "application/json"
    assert counted(documents, "CallbacksForwarded") == 1
    assert counted(documents, "ForwardFailures") == 0


def test_forward_of_an_sse_kms_archive_reads_the_callback_and_links_the_files_with_the_key(
    forwarding: Forwarding, task_id: str
) -> None:
    stack, receiver = forwarding.stack, forwarding.receiver
    key = stack.client("kms").create_key(Description="kie2s3 archive key")["KeyMetadata"]["Arn"]
    with function_environment({"KMS_KEY_ARN": key}):  # the stack deployed with KmsKeyArn
        served = serve(stack, task_id, [(".png", 4096)])
        assert post_callback(market_body(task_id, list(served)), task_id)[0] == 200
        stack.poller().drain()
        forwarding.drain()
    [got] = receiver.received
    assert got.verified, got.reason
    [file] = got.json()["kie2s3"]["files"]
    assert file["state"] == "copied"
    for stored in (file["key"], *_raw_keys(stack, task_id)):  # what the forwarder read and linked
        head = stack.client("s3").head_object(Bucket=stack.bucket, Key=stored)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key), stored


def _raw_keys(stack: Stack, task_id: str) -> list[str]:
    listing = stack.client("s3").list_objects_v2(Bucket=stack.bucket, Prefix=f"kie/{task_id}/callbacks/")
    return [o["Key"] for o in listing.get("Contents", [])]


@pytest.mark.parametrize("sample", ["failed", "suno-text"])
def test_forward_goes_at_once_without_files_to_wait_for(
    forwarding: Forwarding, task_id: str, sample: str
) -> None:
    if sample == "failed":
        body, signed_id, state = failed_task(task_id), task_id, "failed"
    else:  # a non-final Suno stage of a task whose files come in a later callback
        body = json.loads(load_event("callback-suno-text.json")["body"])
        body["data"]["task_id"] = signed_id = task_id
        state = "pending"
    assert post_callback(body, signed_id)[0] == 200
    assert forwarding.poll() == 1
    [got] = forwarding.receiver.received
    assert got.verified, got.reason
    assert got.json()["kie2s3"]["state"] == state
    assert forwarding.poller.outstanding() == 0


def test_forward_waits_for_the_files_at_most_15_minutes(forwarding: Forwarding, task_id: str) -> None:
    stack, receiver = forwarding.stack, forwarding.receiver
    served = serve(stack, task_id, [(".png", 2048)])
    post_callback(market_body(task_id, list(served)), task_id)
    forwarding.clock.advance(14 * 60)
    assert forwarding.poll() == 1
    assert receiver.received == []
    forwarding.clock.advance(61)  # 15 minutes and a second after it arrived: forwarded as it is
    assert forwarding.poll() == 1
    [got] = receiver.received
    assert got.json()["kie2s3"]["state"] == "pending"
    assert got.verified, got.reason
    stack.poller().drain()


def test_forward_target_url_is_called_as_given(
    stack: Stack, receiver: ForwardReceiver, clock: Clock, monkeypatch: pytest.MonkeyPatch, task_id: str
) -> None:
    # Token mode: the target may carry its own token in its query; it is called exactly so.
    url = receiver.url("/hooks/kie?token=s3cr%2Ft&tenant=a")
    with forwarding_to(stack, receiver, clock, monkeypatch, url) as forwarding:
        post_callback(failed_task(task_id), task_id)
        forwarding.drain()
    [got] = receiver.received
    assert got.path == "/hooks/kie?token=s3cr%2Ft&tenant=a"


# ---------------------------------------------------------------------------- retries and the DLQ


def test_forward_to_a_receiver_down_longer_than_the_tolerance_is_verifiable_when_it_comes_back(
    forwarding: Forwarding, task_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver, clock = forwarding.receiver, forwarding.clock
    post_callback(failed_task(task_id), task_id)
    receiver.answer = 503
    with printed(capsys) as documents:
        assert forwarding.poll() == 1
        receiver.stop()  # down: connections refused
        clock.advance(TOLERANCE + 600)
        assert forwarding.poll() == 1
        clock.advance(3600)
        receiver.start()
        receiver.answer = None
        forwarding.drain()
    first, last = receiver.received
    assert (first.verified, last.verified) == (True, True)
    assert int(last.headers["x-webhook-timestamp"]) == int(clock())
    # Signed afresh: the first attempt's signature would be refused now, as stale.
    with pytest.raises(AuthenticationError, match="outside the allowed window"):
        verify_signature(
            key=FORWARD_HMAC_KEY,
            task_id=task_id,
            timestamp=first.headers["x-webhook-timestamp"],
            signature=first.headers["x-webhook-signature"],
            now=clock(),
            tolerance=TOLERANCE,
        )
    assert counted(documents, "CallbacksForwarded") == 1
    assert counted(documents, "ForwardFailures") == 0


@pytest.mark.parametrize("answer", [500, HANG], ids=["http-500", "timeout"])
def test_forward_failing_every_attempt_lands_in_the_dlq_with_the_alarm_metric(
    forwarding: Forwarding, task_id: str, capsys: pytest.CaptureFixture[str], answer: int | str
) -> None:
    stack, receiver = forwarding.stack, forwarding.receiver
    post_callback(failed_task(task_id), task_id)
    receiver.answer = answer
    # Every answer hangs: a loopback connection is made at once, the wait for the answer times out.
    forwarding.policy = ForwardPolicy(timeout_seconds=0.05)
    with printed(capsys) as documents:
        forwarding.drain()
    receiver.release()
    assert len(receiver.received) == FORWARD_MAX_RECEIVE_COUNT
    assert all(r.verified for r in receiver.received)
    failures = [d for d in documents if d.get("message") == "forward failed: last attempt"]
    assert len(failures) == 1
    assert counted(documents, "ForwardFailures") == 1
    assert counted(documents, "CallbacksForwarded") == 0
    [job] = forwarding.dead_letters()
    assert job["task_id"] == task_id
    # Redriven once the handler is fixed, it is forwarded.
    url = dead_letter_queue_url(stack)
    assert redrive(stack.client("sqs"), url, stack.env["FORWARD_QUEUE_URL"]) == 1
    receiver.answer = None
    forwarding.drain()
    assert receiver.received[-1].verified
    assert len(receiver.received) == FORWARD_MAX_RECEIVE_COUNT + 1


def test_forward_redirect_is_not_followed(forwarding: Forwarding, task_id: str, clock: Clock) -> None:
    receiver = forwarding.receiver
    with ForwardReceiver(FORWARD_HMAC_KEY, clock=clock) as elsewhere:
        receiver.answer = ("redirect", elsewhere.url())
        post_callback(failed_task(task_id), task_id)
        assert forwarding.poll() == 1
        assert elsewhere.received == []
    assert len(receiver.received) == 1
    assert forwarding.poller.outstanding() == 1  # a redirect is a failed attempt: tried again later
    receiver.answer = None
    forwarding.drain()
    assert len(receiver.received) == 2


def test_archive_is_unaffected_when_the_receiver_hangs(forwarding: Forwarding, task_id: str) -> None:
    stack, receiver = forwarding.stack, forwarding.receiver
    receiver.answer = HANG
    served = serve(stack, task_id, [(".png", 4096), (".mp4", 9 * 1024**2)])
    status, answer = post_callback(market_body(task_id, list(served)), task_id)
    assert (status, answer["state"]) == (200, "pending")
    stack.poller().drain()  # the copy worker never waits on the forward
    assert receiver.received == []
    doc = task_document(task_id)
    assert doc["state"] == "copied"
    for file, source in zip(doc["files"], served.values(), strict=True):
        assert file["sha256"] == source.sha256_hex()
    assert forwarding.poll() == 1  # the forward's attempt times out, and is tried again later
    receiver.release()
    assert len(receiver.received) == 1
    assert forwarding.poller.outstanding() == 1
    assert task_document(task_id)["state"] == "copied"


# ---------------------------------------------------------------------------- loops and refusals


def test_callback_carrying_kie2s3_is_not_forwarded(forwarding: Forwarding, task_id: str) -> None:
    body = {**failed_task(task_id), "kie2s3": {"taskId": task_id, "state": "failed"}}
    status, answer = post_callback(body, task_id)
    assert (status, answer["state"]) == (200, "failed")  # accepted and recorded, as any callback
    assert forwarding.poller.outstanding() == 0
    assert forwarding.receiver.received == []


def test_forward_to_the_host_the_callback_arrived_on_is_refused(
    forwarding: Forwarding, task_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The callback came in on the receiver's own host and port: forwarding there would loop.
    arrived_on = f"127.0.0.1:{forwarding.receiver.port}"
    event = callback_event(
        failed_task(task_id), task_id=task_id, hmac_key=WEBHOOK_HMAC_KEY, headers={"Host": arrived_on}
    )
    assert send(event)[0] == 200
    with printed(capsys) as documents:
        forwarding.drain()
    assert forwarding.receiver.received == []
    assert counted(documents, "ForwardFailures") == 1
    assert [d["host"] for d in documents if d.get("message", "").startswith("forward refused")] == [
        arrived_on
    ]


@pytest.mark.parametrize(
    "url",
    [
        "https://abc123.execute-api.us-east-1.amazonaws.com/callbacks/kie",
        "https://api.example.com/prod/callbacks/kie/?token=x",
        # Issue 21 (8): spellings a server routes to /callbacks/kie all the same.
        "https://api.example.com/prod/callbacks//kie?token=x",
        "https://api.example.com/callbacks/%6bie;a?token=x",
        "https://api.example.com/callbacks%2Fkie%20?token=x",
    ],
)
def test_forward_url_at_the_stack_callback_route_is_refused_at_start_and_the_archive_goes_on(
    stack: Stack,
    receiver: ForwardReceiver,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    task_id: str,
    url: str,
) -> None:
    # Nothing about forwarding may stop the archive: the functions start, say why forwarding is
    # refused, accept and archive the callback; its forward job is refused (never sent), counted, and
    # waits on the forward queue until the configuration is fixed.
    with forwarding_to(stack, receiver, clock, monkeypatch, url), printed(capsys) as documents:
        status, answer = post_callback(failed_task(task_id), task_id)
        assert (status, answer["state"]) == (200, "failed")
        sqs_client, queue_url = stack.client("sqs"), stack.env["FORWARD_QUEUE_URL"]
        [message] = sqs_client.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
        sqs_client.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        with pytest.raises(RetryLaterError, match="forwarding refused"):  # it would wait on the queue
            forward_callback(
                sqs.get_services(), ForwardJob.model_validate_json(message["Body"]), last_delivery=False
            )
        metrics.clear_metrics()  # counted by the handler's flush, which a direct call has not
    [started] = [d for d in documents if d.get("message", "").startswith("forwarding refused at start")]
    assert "loop" in started["reason"]
    assert [
        d["reason"] for d in documents if d.get("message") == "forward refused: forwarding is misconfigured"
    ]
    assert "token=x" not in json.dumps(documents)
    assert receiver.received == []
    assert objects_under(stack, f"kie/{task_id}/callbacks/")  # the raw body archived all the same


def test_forward_with_a_misconfigured_url_and_a_host_is_counted_as_refused(
    stack: Stack,
    receiver: ForwardReceiver,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    task_id: str,
) -> None:
    # Issue 21 (9): the loop check by host read FORWARD_URL before the configuration check did, and
    # raised on a URL it cannot parse: the job failed uncounted. The configuration is judged first.
    url = "https://user:pw@hooks.example.com/kie"
    with forwarding_to(stack, receiver, clock, monkeypatch, url) as forwarding:
        event = callback_event(
            failed_task(task_id),
            task_id=task_id,
            hmac_key=WEBHOOK_HMAC_KEY,
            headers={"Host": "api.example.com"},
        )
        assert send(event)[0] == 200
        with printed(capsys) as documents:
            assert forwarding.poll() == 1  # one delivery, through the handler
        sqs_client, queue_url = stack.client("sqs"), stack.env["FORWARD_QUEUE_URL"]
        for message in sqs_client.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", []):
            sqs_client.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    assert counted(documents, "ForwardFailures") == 1
    [refused] = [d for d in documents if d.get("message") == "forward refused: forwarding is misconfigured"]
    assert "credentials" in refused["reason"]
    assert "pw" not in json.dumps(documents)
    assert receiver.received == []


def test_forward_job_that_cannot_be_queued_leaves_the_callback_accepted(
    forwarding: Forwarding, task_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = forwarding.stack
    missing = stack.env["FORWARD_QUEUE_URL"] + "-gone"
    with (
        function_environment(
            {**stack.env, "FORWARD_URL": forwarding.receiver.url(), "FORWARD_QUEUE_URL": missing}
        ),
        printed(capsys) as documents,
    ):
        status, answer = post_callback(failed_task(task_id), task_id)
    assert (status, answer["state"]) == (200, "failed")
    assert counted(documents, "ForwardFailures") == 1
    [lost] = [d for d in documents if d.get("message") == "forward not queued"]
    assert lost["raw_key"] in objects_under(stack, f"kie/{task_id}/callbacks/")


def test_worker_process_copies_then_forwards(stack: Stack, receiver: ForwardReceiver, task_id: str) -> None:
    # devstack.worker (one Lambda container in its own process) runs the forward queue after the
    # copy queue, with the real clock, when FORWARD_URL is set.
    env = {**stack.env, "FORWARD_URL": receiver.url()}
    served = serve(stack, task_id, [(".png", 4096)])
    with function_environment(env):
        assert post_callback(market_body(task_id, list(served)), task_id)[0] == 200
    report = worker_report(start_worker(stack, env=env))
    assert report["task_ids"].count(task_id) == 1  # its one file copied
    assert report["forward_messages"] == 1  # then its callback forwarded, at the first delivery
    [got] = receiver.received
    assert got.verified, got.reason
    assert got.json()["kie2s3"]["state"] == "copied"
