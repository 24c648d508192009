"""devstack.sigv4: what botocore signs, `check` accepts; any change to what was signed, it refuses."""

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from botocore.credentials import Credentials
from devstack import sigv4
from devstack.sigv4 import INVALID_TOKEN, MISMATCH, UNSIGNED, Issued, api_region, check, issue, sign
from hypothesis import given
from hypothesis import strategies as st

KEYS = issue(temporary=False)
SESSION = issue(temporary=True)
ISSUED = {KEYS.access_key: KEYS, SESSION.access_key: SESSION}
REGION = "us-east-1"
URL = "http://127.0.0.1:3000/tasks/7c1e0f3ab2d94c55a1e6f0b9d2c4a871"


def botocore_credentials(issued: Issued) -> Credentials:
    return Credentials(issued.access_key, issued.secret_key, issued.token)


def signed(
    issued: Issued = KEYS, method: str = "GET", url: str = URL, body: bytes = b"", region: str = REGION
) -> dict[str, str]:
    headers = {"content-type": "application/json"} if body else {}
    return sign(botocore_credentials(issued), region, method, url, body, headers)


def verdict(headers: dict[str, str], method: str = "GET", url: str = URL, body: bytes = b"") -> str | None:
    """The check of a request as it arrives: with the Host header its HTTP client sends."""
    received = {"Host": urlsplit(url).netloc, **headers}
    return check(method=method, url=url, headers=received, body=body, issued=ISSUED, region=REGION)


def test_issued_credentials_look_like_aws_ones() -> None:
    assert KEYS.access_key.startswith("AKIA")
    assert len(KEYS.access_key) == 20
    assert KEYS.token is None
    assert SESSION.access_key.startswith("ASIA")
    assert SESSION.token
    assert len(KEYS.secret_key) == 40
    assert issue(temporary=False) != issue(temporary=False)


def test_api_region_is_the_one_in_the_execute_api_host() -> None:
    assert api_region("https://a1b2c3.execute-api.eu-west-1.amazonaws.com", "us-east-1") == "eu-west-1"
    assert api_region("http://127.0.0.1:3000", "us-east-1") == "us-east-1"


def test_sign_adds_the_session_token_only_when_there_is_one() -> None:
    assert "X-Amz-Security-Token" not in signed(KEYS)
    assert signed(SESSION)["X-Amz-Security-Token"] == SESSION.token


@given(
    method=st.sampled_from(["GET", "POST"]),
    path=st.from_regex(r"/(copies|tasks/[A-Za-z0-9_-]{1,40})", fullmatch=True),
    query=st.sampled_from(["", "?a=1", "?b=2&a=%20x"]),
    body=st.binary(max_size=300),
    issued=st.sampled_from([KEYS, SESSION]),
)
def test_what_botocore_signs_is_accepted(
    method: str, path: str, query: str, body: bytes, issued: Issued
) -> None:
    url = f"http://127.0.0.1:3000{path}{query}"
    assert verdict(signed(issued, method, url, body), method, url, body) is None


@given(body=st.binary(min_size=1, max_size=200), flip=st.integers(min_value=0))
def test_a_changed_body_is_refused(body: bytes, flip: int) -> None:
    headers = signed(KEYS, "POST", URL, body)
    at = flip % len(body)
    changed = body[:at] + bytes([body[at] ^ 1]) + body[at + 1 :]
    assert verdict(headers, "POST", URL, changed) == MISMATCH


@pytest.mark.parametrize(
    ("method", "url"),
    [("POST", URL), ("GET", URL + "x"), ("GET", URL + "?a=1"), ("GET", URL.replace(":3000", ":3001"))],
)
def test_a_changed_method_path_query_or_host_is_refused(method: str, url: str) -> None:
    assert verdict(signed(), method, url) == MISMATCH  # signed for GET URL on 127.0.0.1:3000


def test_an_unsigned_request_is_refused() -> None:
    assert verdict({}) == UNSIGNED


def test_a_wrong_secret_is_refused() -> None:
    assert verdict(signed(Issued(KEYS.access_key, "x" * 40))) == MISMATCH


def test_keys_the_stack_did_not_issue_are_refused() -> None:
    assert verdict(signed(issue(temporary=False))) == INVALID_TOKEN


def test_a_session_key_without_its_token_is_refused() -> None:
    headers = signed(SESSION)
    del headers["X-Amz-Security-Token"]
    assert verdict(headers) == INVALID_TOKEN


def test_an_empty_token_header_beside_plain_keys_is_refused() -> None:
    # What `curl -H "x-amz-security-token: $AWS_SESSION_TOKEN"` sends for keys that have no token.
    headers = signed(KEYS)
    headers["x-amz-security-token"] = ""
    assert verdict(headers) == INVALID_TOKEN


def test_a_signature_for_another_region_or_service_is_refused() -> None:
    assert "scoped to us-east-1/execute-api" in str(verdict(signed(region="eu-west-1")))


@pytest.mark.parametrize(("minutes", "words"), [(-6, "Signature expired"), (6, "not yet current")])
def test_a_signature_beyond_five_minutes_is_refused(
    monkeypatch: pytest.MonkeyPatch, minutes: int, words: str
) -> None:
    then = datetime.now(UTC) + timedelta(minutes=minutes)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: then.replace(tzinfo=None))
    assert words in str(verdict(signed()))


def test_a_signature_within_five_minutes_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    then = datetime.now(UTC) - timedelta(minutes=4)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: then.replace(tzinfo=None))
    assert verdict(signed()) is None


def test_an_unsigned_host_or_a_declared_body_hash_that_lies_is_refused() -> None:
    headers = signed(KEYS, "POST", URL, b"{}")
    headers["x-amz-content-sha256"] = "0" * 64
    assert verdict(headers, "POST", URL, b"{}") == MISMATCH
    mangled = signed()
    mangled["Authorization"] = mangled["Authorization"].replace("SignedHeaders=host;", "SignedHeaders=")
    assert "SignedHeaders must include host" in str(verdict(mangled))


def test_a_malformed_authorization_is_refused() -> None:
    assert verdict({"Authorization": "Bearer x"}) == sigv4.MALFORMED
