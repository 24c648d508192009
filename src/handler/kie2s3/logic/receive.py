"""Receive a kie.ai callback: authenticate, archive the raw body, parse, record, dispatch — fast."""

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from kie2s3.errors import NOT_A_JSON_OBJECT, NOT_JSON, AuthenticationError, BadRequestError
from kie2s3.families import PARSERS, UNKNOWN, detect, parser_for, task_id_of
from kie2s3.families.base import JsonObject
from kie2s3.logic.forward import enqueue_forward, forwardable
from kie2s3.logic.plan import accept, raw_callback_key
from kie2s3.logic.services import Services
from kie2s3.logic.status import status_document
from kie2s3.models import ForwardJob, Outcome, ParsedCallback, StatusDocument
from kie2s3.observability import logger, metrics, tracer
from kie2s3.ports import SecretVersions
from kie2s3.signature import signature_matches, token_matches, verify_signature, verify_token

# A signature is 44 base64 characters and a timestamp 10 digits: anything near this is not kie.ai.
MAX_AUTH_HEADER_CHARS = 1024
# A signature or token that no cached version of its secret matches has the secret read again, at
# most this often per container: kie.ai signs with a new key as soon as it is made, and a flood of
# bad signatures costs Secrets Manager no more than one read per this many seconds.
REFRESH_SECRETS_AFTER_SECONDS = 30.0


@dataclass(frozen=True)
class CallbackRequest:
    """A callback as it reached the API: raw body, lower-cased headers, query parameters."""

    body: bytes
    headers: Mapping[str, str]
    query: Mapping[str, str]
    received_at: float
    deadline: float | None = None  # time.monotonic() by which inline copies must stop retrying
    host: str | None = None  # the `Host` it arrived on (host[:port]): never a forward target


def json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError; nesting too deep
        raise BadRequestError(NOT_JSON) from exc
    if not isinstance(body, dict):
        raise BadRequestError(NOT_A_JSON_OBJECT)
    return body


def _auth_header(request: CallbackRequest, name: str) -> str | None:
    value = request.headers.get(name)
    if value is not None and len(value) > MAX_AUTH_HEADER_CHARS:
        raise AuthenticationError(f"{name} is longer than {MAX_AUTH_HEADER_CHARS} characters")
    return value


def accepted_values(versions: SecretVersions, now: float, window_seconds: int) -> tuple[str, ...]:
    """The secret's values a callback may use: AWSCURRENT, and AWSPREVIOUS until `window_seconds`
    after the current version was created (the rotation)."""
    if versions.previous is not None and now < versions.rotated_at + window_seconds:
        return (versions.current, versions.previous)
    return (versions.current,)


def _accepted(
    services: Services, secret_id: str, now: float, matches: Callable[[Sequence[str]], bool]
) -> tuple[str, ...]:
    """The values of the secret accepted now: read again first when none `matches` and the cached
    read is older than REFRESH_SECRETS_AFTER_SECONDS (the secret may have been rotated since)."""
    window = services.settings.secret_rotation_window_seconds
    versions = services.secret_versions(secret_id, False)
    values = accepted_values(versions, now, window)
    if not matches(values) and now - versions.fetched_at >= REFRESH_SECRETS_AFTER_SECONDS:
        values = accepted_values(services.secret_versions(secret_id, True), now, window)
    return values


def authenticate(services: Services, request: CallbackRequest, task_id: str) -> None:
    """HMAC when a key is configured, else the `?token=`; with neither, refuse (fail closed).

    During a rotation window the previous version of the key or token is accepted too.
    """
    settings = services.settings
    now = request.received_at
    if settings.kie_webhook_hmac_secret:
        timestamp = _auth_header(request, "x-webhook-timestamp")
        signature = _auth_header(request, "x-webhook-signature")
        keys = _accepted(
            services,
            settings.kie_webhook_hmac_secret,
            now,
            lambda keys: (
                bool(timestamp and signature)
                and signature_matches(keys, task_id, timestamp or "", signature or "")
            ),
        )
        verify_signature(
            key=keys[0],
            previous=keys[1:],
            task_id=task_id,
            timestamp=timestamp,
            signature=signature,
            now=now,
            tolerance=settings.webhook_tolerance_seconds,
        )
    elif settings.callback_token_secret:
        presented = request.query.get("token")
        tokens = _accepted(
            services, settings.callback_token_secret, now, lambda t: token_matches(t, presented)
        )
        verify_token(expected=tokens[0], previous=tokens[1:], presented=presented)
    else:
        raise AuthenticationError("callback authentication is not configured: refusing every callback")


@tracer.capture_method(capture_response=False)
def receive_callback(services: Services, request: CallbackRequest) -> StatusDocument:
    """Accept one callback and answer with the task's status document.

    400 (BadRequestError) for a body that is not a JSON object or names no valid task id;
    401 (AuthenticationError) before anything is stored. A shape no parser knows is archived,
    recorded `unrecognised` and answered 200, so that it can be replayed once a parser exists.
    """
    body = json_object(request.body)
    task_id = task_id_of(body)  # the id authenticated here is the id parsed, recorded and keyed
    logger.set_correlation_id(task_id)
    authenticate(services, request, task_id)  # a refusal is logged and counted by the HTTP layer
    hint = family_hint(request.query.get("family"))
    if services.ledger.taken_down(task_id):  # make takedown: not even the body is kept again
        logger.info("callback for a task taken down: nothing kept")
        return status_document(services, task_id, under_way=False)
    raw_key = _archive(services, request, task_id, hint)
    parsed = parse_callback(body, task_id, hint)
    metrics.add_metric(name="CallbacksAccepted", unit=MetricUnit.Count, value=1)
    logger.info(
        "callback accepted",
        family=parsed.family,
        outcome=parsed.outcome,
        files=len(parsed.files),
        raw_key=raw_key,
    )
    recorded = accept(services, parsed, request.deadline)
    _forward(services, body, request, raw_key, recorded)
    return status_document(services, task_id, under_way=False)


def family_hint(given: str | None) -> str | None:
    """The `?family=` hint when a parser of that name exists. Any other hint (a typo in the callback
    URL) is dropped with a warning and the `FamilyHintsUnknown` metric: the callback is still
    accepted, its family detected from the body's shape, and the hint is not archived with it."""
    if not given or parser_for(given, PARSERS) is not None:
        return given or None
    logger.warning(
        "unknown family hint: the family is detected from the body's shape",
        hint=given[:64],
        families=sorted(p.name for p in PARSERS),
    )
    metrics.add_metric(name="FamilyHintsUnknown", unit=MetricUnit.Count, value=1)
    return None


def _forward(
    services: Services, body: JsonObject, request: CallbackRequest, raw_key: str, recorded: ParsedCallback
) -> None:
    """Queue the accepted callback's forward (FORWARD_URL), unless it is itself a forwarded one."""
    if services.forwarding is None:
        return
    if not forwardable(body):
        logger.warning("callback already carries a kie2s3 field: not forwarded again", raw_key=raw_key)
        return
    job = ForwardJob(
        task_id=recorded.task_id,
        raw_key=raw_key,
        arrived_at=request.received_at,
        host=request.host,
        wait_for_files=recorded.outcome is Outcome.SUCCESS,
    )
    enqueue_forward(services, job)


def _archive(services: Services, request: CallbackRequest, task_id: str, hint: str | None) -> str:
    digest = hashlib.sha256(request.body).hexdigest()
    key = raw_callback_key(services.settings.object_prefix, task_id, int(request.received_at * 1000), digest)
    services.store.put_raw(key, request.body, family_hint=hint)
    return key


def parse_callback(body: JsonObject, task_id: str, hint: str | None) -> ParsedCallback:
    """What a callback body says, by the parsers of this version: UNRECOGNISED when none knows it.

    `task_id` is `task_id_of(body)`, the id that was authenticated. The reconciler replays archived
    bodies through here, so a body recorded unrecognised is archived once a parser exists.
    """
    parser = detect(body, PARSERS, hint)
    if parser is not None:
        try:
            return parser.parse(body)
        except (ValidationError, ValueError) as exc:
            logger.warning(
                "callback matched a family but did not parse", family=parser.name, error=str(exc)[:500]
            )
    return ParsedCallback(
        task_id=task_id,
        family=parser.name if parser else UNKNOWN,
        outcome=Outcome.UNRECOGNISED,
        reason="callback shape not recognised; raw body archived for replay",
    )
