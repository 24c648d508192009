"""Forward each accepted callback to the user's own handler (FORWARD_URL), once its files are settled.

Delivery is at least once: every callback kie2s3 accepts is one forward job on the forward queue,
delivered until the target answers 2xx, then dead-lettered after the queue's maxReceiveCount. The
archive never waits for any of it: the callback's acknowledgment only enqueues the job.
"""

import json
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from kie2s3 import __version__
from kie2s3.errors import ConfigurationError, Kie2S3Error, RetryLaterError
from kie2s3.logic.services import Forwarding, Services
from kie2s3.logic.status import status_document
from kie2s3.models import ForwardJob, StatusDocument
from kie2s3.observability import logger, metrics
from kie2s3.retries import ForwardPolicy
from kie2s3.signature import expected_signature
from kie2s3.sources import canonical_url, parse_source

# The top-level field a forwarded body gains: a body that already has it is never forwarded again.
FORWARD_FIELD = "kie2s3"
USER_AGENT = f"kie2s3/{__version__} (forwarded kie.ai callback)"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def forwardable(body: Mapping[str, Any]) -> bool:
    """Whether a callback body may be forwarded: not one kie2s3 (this stack or another) forwarded."""
    return FORWARD_FIELD not in body


def enqueue_forward(services: Services, job: ForwardJob) -> None:
    """Queue the forward of an accepted callback; never raises (the callback's 200 must not depend on it).

    SQS was already tried 5 times by the client's own retries: a job it still refuses is logged with
    its raw body's key (to forward by hand) and counted in ForwardFailures, whose alarm reports it.
    """
    if services.forwarding is None:
        return
    try:
        services.forwarding.queue.send(job)
    except Kie2S3Error as exc:
        metrics.add_metric(name="ForwardFailures", unit=MetricUnit.Count, value=1)
        logger.error("forward not queued", raw_key=job.raw_key, reason=exc.reason)


def with_status(raw: bytes, document: StatusDocument) -> bytes:
    """The body exactly as kie.ai sent it, with the `kie2s3` status document added as its last field.

    The bytes up to the object's closing brace are kept as they are (key order, spacing, number
    spelling), so a handler that hashes or re-parses kie.ai's JSON sees kie.ai's JSON.
    """
    text = raw.rstrip()
    body = json.loads(text)
    if not isinstance(body, dict) or not text.endswith(b"}"):
        raise ValueError("a callback body is a JSON object")
    separator = b"," if body else b""
    added = json.dumps(FORWARD_FIELD).encode() + b":" + document.model_dump_json(by_alias=True).encode()
    return text[:-1] + separator + added + b"}"


def _authority(host: str, port: int | None, scheme: str) -> tuple[str, int]:
    return host.strip("[]").lower(), port or _DEFAULT_PORTS.get(scheme, 443)


def same_host(target: str, arrived_on: str | None) -> bool:
    """Whether the target is the host (and port) a callback arrived on: kie2s3's own API, a loop.

    `arrived_on` is the request's `Host` (host[:port]); without a port it is https's 443, as
    API Gateway's domains are. `target` is a FORWARD_URL the settings accept (forward_callback
    judges the configuration first); SourceRefusedError for one that does not parse.
    """
    if not arrived_on:
        return False
    parsed = parse_source(target)
    try:
        arrival = parse_source(f"https://{arrived_on}")
    except Kie2S3Error:  # not a host name at all: no target can be it
        return False
    return _authority(parsed.host or "", parsed.port, (parsed.scheme or "").lower()) == _authority(
        arrival.host or "", arrival.port, "https"
    )


def _delay(age: float, low: int, high: int) -> int:
    """As long as the job is old, within [low, high] seconds: the delays double as the job ages."""
    return int(min(max(age, low), high))


def wait_seconds(policy: ForwardPolicy, age: float) -> int:
    """How long a job `age` seconds old waits for its files before it looks again (never past
    `settle_seconds`, when it goes whatever their state)."""
    wait = _delay(age, policy.wait_min_seconds, policy.wait_max_seconds)
    return max(1, min(wait, int(policy.settle_seconds - age)))


def retry_seconds(policy: ForwardPolicy, age: float) -> int:
    """How long a job `age` seconds old waits after a failed attempt."""
    return _delay(age, policy.retry_min_seconds, policy.retry_max_seconds)


def _headers(forwarding: Forwarding, key: str, task_id: str) -> dict[str, str]:
    """kie.ai's signature headers, signed now: a retry hours later is as fresh as the first attempt."""
    timestamp = str(int(forwarding.clock()))
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Webhook-Timestamp": timestamp,
        "X-Webhook-Signature": expected_signature(key, task_id, timestamp),
    }


def _attempt(
    services: Services, forwarding: Forwarding, job: ForwardJob, document: StatusDocument
) -> str | None:
    """POST the callback once; why it failed, or None when the target answered 2xx."""
    settings = services.settings
    try:
        raw, _ = services.store.get_raw(job.raw_key)
        body = with_status(raw, document)
        headers = _headers(forwarding, services.secret(settings.forward_hmac_secret), job.task_id)
        status = forwarding.webhook.post(
            settings.forward_url, body, headers, timeout_seconds=forwarding.policy.timeout_seconds
        )
    except Kie2S3Error as exc:
        return exc.reason
    except ValueError:  # JSON, but not the UTF-8 object kie.ai sends (a UTF-16 body, say): never sent
        return "the archived callback is not a UTF-8 JSON object"
    if 200 <= status < 300:
        return None
    redirect = " (redirects are not followed)" if 300 <= status < 400 else ""
    return f"target answered HTTP {status}{redirect}"


def _waiting(document: StatusDocument, job: ForwardJob, age: float, policy: ForwardPolicy) -> int | None:
    """Seconds to wait for the callback's files, None when it is to be forwarded now."""
    if not job.wait_for_files or document.state not in ("pending", "copying") or age >= policy.settle_seconds:
        return None
    return wait_seconds(policy, age)


def forward_callback(services: Services, job: ForwardJob, *, last_delivery: bool) -> None:
    """Forward one accepted callback to FORWARD_URL, or say when to try again.

    Forwarded at once for a callback without files to archive (a failed task, a non-final stage, a
    result without files), else once its task's files are settled (copied or failed), at the latest
    `settle_seconds` after it arrived (and on the queue's last delivery, whatever their state). The
    body is kie.ai's exact JSON plus the `kie2s3` status document (with presigned links when on),
    signed as kie.ai signs, with the forwarding key, at each attempt. Raises RetryLaterError to be
    delivered again; on the last delivery a failure is counted (ForwardFailures) and raised, for
    the dead-letter queue. A target on the host the callback arrived on is never called (a loop).
    """
    forwarding = services.forwarding
    if forwarding is None:
        raise ConfigurationError("a forward job reached a function whose FORWARD_URL is empty")
    age = forwarding.clock() - job.arrived_at
    # The configuration first (settings.forward_target_refusal, the loop by route included): every
    # later check reads FORWARD_URL and may assume it parses.
    if refusal := services.settings.forward_refusal:
        # A configuration to fix, not a target's fault: the job waits (then the dead-letter queue).
        metrics.add_metric(name="ForwardFailures", unit=MetricUnit.Count, value=1)
        logger.error("forward refused: forwarding is misconfigured", reason=refusal)
        raise RetryLaterError(
            f"forwarding refused: {refusal}", 0 if last_delivery else retry_seconds(forwarding.policy, age)
        )
    target = canonical_url(services.settings.forward_url)  # never the query: it may hold a token
    if same_host(services.settings.forward_url, job.host):
        metrics.add_metric(name="ForwardFailures", unit=MetricUnit.Count, value=1)
        logger.error("forward refused: the target is kie2s3's own API", target=target, host=job.host)
        return
    if services.ledger.taken_down(job.task_id):
        logger.info("task taken down: not forwarded", raw_key=job.raw_key)
        return
    document = status_document(services, job.task_id, links=True)
    wait = None if last_delivery else _waiting(document, job, age, forwarding.policy)
    if wait is not None:
        logger.info("forward waits for the files", state=document.state, wait_seconds=wait)
        raise RetryLaterError(f"files still {document.state}", wait)
    failure = _attempt(services, forwarding, job, document)
    if failure is None:
        metrics.add_metric(name="CallbacksForwarded", unit=MetricUnit.Count, value=1)
        logger.info("callback forwarded", target=target, state=document.state, age_seconds=round(age))
        return
    if last_delivery:
        metrics.add_metric(name="ForwardFailures", unit=MetricUnit.Count, value=1)
        logger.error("forward failed: last attempt", target=target, reason=failure, raw_key=job.raw_key)
        raise RetryLaterError(f"forward failed: {failure}", 0)
    delay = retry_seconds(forwarding.policy, age)
    logger.warning("forward attempt failed", target=target, reason=failure, retry_seconds=delay)
    raise RetryLaterError(f"forward failed: {failure}", delay)
