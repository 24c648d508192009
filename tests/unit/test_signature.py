import base64
import hashlib
import hmac

import pytest

from kie2s3.errors import AuthenticationError
from kie2s3.signature import expected_signature, verify_signature, verify_token

KEY = "whk_test_key"
TASK = "7c1e0f3ab2d94c55a1e6f0b9d2c4a871"
NOW = 1_790_001_234


def _sign(task: str, ts: str, key: str = KEY) -> str:
    return base64.b64encode(hmac.new(key.encode(), f"{task}.{ts}".encode(), hashlib.sha256).digest()).decode()


def _verify(**overrides: object) -> None:
    args: dict[str, object] = {
        "key": KEY,
        "task_id": TASK,
        "timestamp": str(NOW),
        "signature": _sign(TASK, str(NOW)),
        "now": float(NOW),
        "tolerance": 300,
    }
    args.update(overrides)
    verify_signature(**args)  # type: ignore[arg-type]


def test_expected_signature_matches_kie_documented_algorithm() -> None:
    assert expected_signature(KEY, TASK, "1790001234") == _sign(TASK, "1790001234")


def test_verify_signature_accepts_fresh_matching_signature() -> None:
    _verify()


def test_verify_signature_accepts_edges_of_window() -> None:
    _verify(now=float(NOW + 300))
    _verify(now=float(NOW - 300))


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"signature": None}, "missing"),
        ({"timestamp": None}, "missing"),
        ({"signature": ""}, "missing"),
        ({"signature": _sign(TASK, str(NOW), key="another-key")}, "does not match"),
        ({"signature": _sign("another-task", str(NOW))}, "does not match"),
        ({"now": float(NOW + 301)}, "outside"),
        ({"now": float(NOW - 301)}, "outside"),
        ({"timestamp": "1790001234.5"}, "seconds"),
        ({"timestamp": "-1790001234"}, "seconds"),
        ({"timestamp": "\uff11\uff17\uff19\uff10"}, "seconds"),
        ({"signature": "\ud800"}, "does not match"),
        ({"signature": _sign(TASK, str(NOW))[:-1] + "\udfff"}, "does not match"),
        ({"timestamp": "179000123\ud800"}, "seconds"),
    ],
    ids=[
        "no-signature",
        "no-timestamp",
        "empty-signature",
        "wrong-key",
        "another-task",
        "stale",
        "future",
        "fractional",
        "negative",
        "non-ascii-digits",
        "lone-surrogate",
        "signature-ending-in-a-lone-surrogate",
        "timestamp-with-a-lone-surrogate",
    ],
)
def test_verify_signature_refuses(overrides: dict[str, object], reason: str) -> None:
    with pytest.raises(AuthenticationError, match=reason):
        _verify(**overrides)


def test_verify_signature_refuses_signature_of_other_timestamp() -> None:
    with pytest.raises(AuthenticationError, match="does not match"):
        _verify(timestamp=str(NOW + 1), signature=_sign(TASK, str(NOW)))


def test_verify_token_accepts_exact_token() -> None:
    verify_token(expected="s3cr3t-token", presented="s3cr3t-token")


@pytest.mark.parametrize("presented", [None, "", "s3cr3t-tokem", "s3cr3t-token ", "s3cr3t-toke\ud800"])
def test_verify_token_refuses_missing_or_wrong(presented: str | None) -> None:
    with pytest.raises(AuthenticationError):
        verify_token(expected="s3cr3t-token", presented=presented)
