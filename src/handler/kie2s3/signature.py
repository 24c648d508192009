"""Authentication of kie.ai callbacks: the webhook HMAC (kie-api.md §3) and the fallback URL token."""

import base64
import hashlib
import hmac

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


def verify_signature(
    *, key: str, task_id: str, timestamp: str | None, signature: str | None, now: float, tolerance: int
) -> None:
    """Accept only a fresh, matching signature; raise AuthenticationError otherwise.

    The timestamp must be whole seconds within ±tolerance of now (both directions, so a replay
    and a clock far ahead are both refused); the comparison is constant-time.
    """
    if not timestamp or not signature:
        raise AuthenticationError("missing X-Webhook-Timestamp or X-Webhook-Signature")
    # Unix seconds have 10 digits until the year 2286; hundreds of them would overflow the comparison.
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > MAX_TIMESTAMP_DIGITS:
        raise AuthenticationError("X-Webhook-Timestamp is not a Unix time in seconds")
    if abs(now - int(timestamp)) > tolerance:
        raise AuthenticationError("X-Webhook-Timestamp is outside the allowed window")
    expected = expected_signature(key, task_id, timestamp)
    if not hmac.compare_digest(expected.encode(), _utf8(signature.strip())):
        raise AuthenticationError("signature does not match")


def verify_token(*, expected: str, presented: str | None) -> None:
    """Accept the callback token given as `?token=` (used when HMAC is off), in constant time."""
    if not presented or not hmac.compare_digest(_utf8(expected), _utf8(presented)):
        raise AuthenticationError("missing or wrong callback token")
