"""`POST /callbacks/kie` fuzzed through the real handler (inline mode): never a 5xx, whatever arrives.

Half the bodies are signed with the right key for the task id the handler will find in them, so
that they get past authentication into archiving, parsing, the ledger and inline copies.
"""

import json
from typing import Any

from devstack.kie_emulator import sign
from devstack.lambda_runtime import http_event, invoke
from devstack.stack import WEBHOOK_HMAC_KEY, Stack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.strategies import BODIES, JSON

from kie2s3.errors import BadRequestError
from kie2s3.families import PARSERS, task_id_of

HEADER_NAMES = st.sampled_from(
    [
        "x-webhook-signature",
        "x-webhook-timestamp",
        "content-type",
        "content-length",
        "x-forwarded-for",
        "host",
    ]
) | st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20)
HEADERS = st.dictionaries(HEADER_NAMES, st.text(max_size=80) | st.integers().map(str), max_size=4)
QUERY = st.dictionaries(
    st.sampled_from(["family", "token", "x"]),
    st.sampled_from([p.name for p in PARSERS]) | st.text(max_size=40),
    max_size=2,
)
RAW = st.one_of(
    BODIES.map(json.dumps),
    JSON.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=100).map(lambda b: b.decode("latin-1")),
)


def _task_id(raw: str, hint: str | None) -> str | None:
    """The task id the handler will read from this body (what kie.ai signs)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    try:
        return task_id_of(body)
    except BadRequestError:
        return None


@settings(
    max_examples=200, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
)
@given(raw=RAW, headers=HEADERS, query=QUERY, signed=st.booleans())
def _fuzz(
    raw: str, headers: dict[str, str], query: dict[str, str], signed: bool, statuses: list[int]
) -> None:
    task_id = _task_id(raw, query.get("family"))
    if signed and task_id:
        headers = {**headers, **{k.lower(): v for k, v in sign(WEBHOOK_HMAC_KEY, task_id).items()}}
    answer: dict[str, Any] = invoke(
        http_event("POST", "/callbacks/kie", body=raw, headers=headers, query=query)
    )
    statuses.append(answer["statusCode"])
    assert answer["statusCode"] < 500, answer


def test_fuzz_callback_never_answers_5xx(inline_mode: Stack) -> None:
    statuses: list[int] = []
    _fuzz(statuses=statuses)
    # The fuzzing reached every outcome: accepted, refused, malformed.
    assert {200, 400, 401} <= set(statuses)
