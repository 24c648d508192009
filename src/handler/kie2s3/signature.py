"""Authentication of kie.ai callbacks: the webhook HMAC (kie-api.md §3) and the fallback URL token."""

import base64
import hashlib
import hmac
from collections.abc import Sequence

from kie2s3.errors import AuthenticationError

MAX_TIMESTAMP_DIGITS = 12


def _utf8(text: str) -> bytes:
    """The text's bytes for a constant-time comparison; a lone surrogate (headers and query values
    may carry one) is encoded as is, so it compares unequal instead of failing to encode."""
    return text.encode("utf-8", "surrogatepass")


def expected_signature(key: str, task_id: str, timestamp: str) -> str:
    """kie.ai's signature: base64(HMAC-SHA256(key, f"{taskId}.{timestamp}")); the body is not covered."""
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _whole_seconds(timestamp: str) -> bool:
    # Unix seconds have 10 digits until the year 2286; hundreds of them would overflow the comparison.
    return timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= MAX_TIMESTAMP_DIGITS


def signature_matches(keys: Sequence[str], task_id: str, timestamp: str, signature: str) -> bool:
    """Whether the signature is kie.ai's under any of the keys (each compared in constant time);
    never for a timestamp that is not whole seconds (kie.ai signs no other)."""
    if not _whole_seconds(timestamp):
        return False
    presented = _utf8(signature.strip())
    matches = [
        hmac.compare_digest(expected_signature(k, task_id, timestamp).encode(), presented) for k in keys
    ]
    return any(matches)


def verify_signature(
    *,
    key: str,
    task_id: str,
    timestamp: str | None,
    signature: str | None,
    now: float,
    tolerance: int,
    previous: Sequence[str] = (),
) -> None:
    """Accept only a fresh signature made with `key` (or, during a rotation, one of `previous`);
    raise AuthenticationError otherwise.

    The timestamp must be whole seconds within ±tolerance of now (both directions, so a replay
    and a clock far ahead are both refused); the comparison is constant-time.
    """
    if not timestamp or not signature:
        raise AuthenticationError("missing X-Webhook-Timestamp or X-Webhook-Signature")
    if not _whole_seconds(timestamp):
        raise AuthenticationError("X-Webhook-Timestamp is not a Unix time in seconds")
    if abs(now - int(timestamp)) > tolerance:
        raise AuthenticationError("X-Webhook-Timestamp is outside the allowed window")
    if not signature_matches((key, *previous), task_id, timestamp, signature):
        raise AuthenticationError("signature does not match")


def token_matches(tokens: Sequence[str], presented: str | None) -> bool:
    """Whether the `?token=` is one of the tokens (each compared in constant time)."""
    if not presented:
        return False
    matches = [hmac.compare_digest(_utf8(t), _utf8(presented)) for t in tokens]
    return any(matches)


def verify_token(*, expected: str, presented: str | None, previous: Sequence[str] = ()) -> None:
    """Accept the callback token given as `?token=` (used when HMAC is off; during a rotation, one
    of `previous` too), in constant time."""
    if not token_matches((expected, *previous), presented):
        raise AuthenticationError("missing or wrong callback token")
