"""Property-based fuzzing of everything that reads outside input: parsers, signature check, source policy.

Each property is the contract the handler relies on to answer 4xx, never 5xx: the family parsers
answer a ParsedCallback or raise ValueError (pydantic's ValidationError is one); the signature
check raises AuthenticationError only; the source policy raises SourceRefusedError only.
"""

import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.strategies import BODIES, SAMPLES

from kie2s3.errors import AuthenticationError, BadRequestError, SourceRefusedError
from kie2s3.families import PARSERS, FamilyParser, detect, task_id_of
from kie2s3.models import TASK_ID_PATTERN, ParsedCallback
from kie2s3.signature import expected_signature, verify_signature
from kie2s3.sources import SourcePolicy

FUZZ = settings(
    max_examples=100, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def _parse_or_value_error(parser: FamilyParser, call: str, *args: Any) -> None:
    try:
        result = getattr(parser, call)(*args)
    except ValueError:
        return
    assert isinstance(result, ParsedCallback), parser.name


# Every parser meets every generated body: the bodies are drawn once (drawing nested JSON costs far
# more than parsing it) and a failure names the parser that broke the contract.
@FUZZ
@given(body=BODIES)
def test_fuzz_parser_callback_parse_or_value_error(body: dict[str, Any]) -> None:
    try:
        task_id_of(body)
    except BadRequestError:
        refused = True  # refused before any parser runs
    else:
        refused = False
    for parser in PARSERS:
        assert isinstance(parser.matches(body), bool), parser.name
        if not refused:
            _parse_or_value_error(parser, "parse", body)


@FUZZ
@given(body=BODIES, task_id=st.text(min_size=1, max_size=20))
def test_fuzz_parser_record_parse_or_value_error(body: dict[str, Any], task_id: str) -> None:
    data = body.get("data") if isinstance(body.get("data"), dict) else body
    for parser in PARSERS:
        _parse_or_value_error(parser, "parse_record", task_id, data)


@FUZZ
@given(body=BODIES, hint=st.none() | st.sampled_from([p.name for p in PARSERS]) | st.text(max_size=10))
def test_fuzz_detection_never_raises(body: dict[str, Any], hint: str | None) -> None:
    found = detect(body, PARSERS, hint)
    assert found is None or found in PARSERS
    with contextlib.suppress(BadRequestError):
        assert TASK_ID_PATTERN.fullmatch(task_id_of(body))


def test_fuzz_mutations_start_from_every_sample() -> None:
    assert len(SAMPLES) >= 10
    for sample in SAMPLES:
        parser = detect(sample, PARSERS)
        assert parser is None or isinstance(parser.matches(sample), bool)


TEXT = st.text(max_size=60)
DIGITS = st.integers(min_value=0, max_value=10**1000).map(str) | st.from_regex(r"\A[0-9]{1,5000}\Z")
HEADER = st.none() | TEXT | DIGITS | st.sampled_from(["1790001234", "-1", "1e9", "٣"])


@FUZZ
@given(
    key=TEXT,
    task_id=TEXT,
    timestamp=HEADER,
    signature=HEADER,
    now=st.floats(allow_nan=False),
    tolerance=st.integers(0, 10**6),
)
def test_fuzz_verify_signature_raises_authentication_error_only(
    key: str, task_id: str, timestamp: str | None, signature: str | None, now: float, tolerance: int
) -> None:
    try:
        verify_signature(
            key=key, task_id=task_id, timestamp=timestamp, signature=signature, now=now, tolerance=tolerance
        )
    except AuthenticationError:
        return
    # Accepted: only possible for the one right signature of a fresh timestamp.
    assert timestamp is not None
    assert signature is not None
    assert signature.strip() == expected_signature(key, task_id, timestamp)


SCHEMES = st.sampled_from(["https", "http", "file", "ftp", "gopher", "data", "HTTPS", "", "javascript"])
HOSTS = st.sampled_from(
    [
        "tempfile.aiquickdraw.com", "file.aiquickdraw.com", "x.r2.cloudflarestorage.com", "127.0.0.1",
        "localhost", "169.254.169.254", "[fd00:ec2::254]", "[::1]", "[::ffff:10.0.0.1]", "10.0.0.1",
        "2130706433", "evil.example", "aiquickdraw.com.evil.example", "", "[", "a b", "xn--80ak6aa92e.com",
    ]
) | st.text(max_size=20)  # fmt: skip
URLS = st.builds(
    lambda scheme, userinfo, host, port, path: f"{scheme}://{userinfo}{host}{port}{path}",
    SCHEMES,
    st.sampled_from(["", "user:pw@", "@", ":@", "u@"]),
    HOSTS,
    st.sampled_from(["", ":443", ":0", ":99999", ":-1", ":abc", ":"]),
    st.text(max_size=20),
) | st.text(max_size=80)


@pytest.mark.parametrize("policy", [SourcePolicy(("tempfile.aiquickdraw.com", "*.r2.cloudflarestorage.com")), SourcePolicy(("*",), allow_local=True)], ids=["deployed", "any-host-local"])  # fmt: skip
@FUZZ
@given(url=URLS)
def test_fuzz_source_policy_raises_source_refused_only(policy: SourcePolicy, url: str) -> None:
    for check in (policy.check, policy.check_endpoint):
        with contextlib.suppress(SourceRefusedError):
            assert check(url) == url


@FUZZ
@given(address=st.ip_addresses().map(str) | st.text(max_size=45), local=st.booleans())
def test_fuzz_check_address_raises_source_refused_only(address: str, local: bool) -> None:
    with contextlib.suppress(SourceRefusedError):
        SourcePolicy((), allow_local=local).check_address("host.example", address)
