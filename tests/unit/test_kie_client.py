"""KieClient over a stand-in pool: whatever kie.ai answers, the client raises kie2s3's errors only."""

import contextlib
import json
from dataclasses import dataclass
from typing import Any, cast

import pytest
import urllib3
from hypothesis import example, given
from hypothesis import strategies as st

from kie2s3.adapters.kie_client import KieClient
from kie2s3.errors import Kie2S3Error, RetryableError


@dataclass
class _Answer:
    status: int
    data: bytes


class _Pool:
    """Answers every request with the same status and body."""

    def __init__(self, status: int, body: bytes) -> None:
        self.answer = _Answer(status, body)

    def request(self, *_: Any, **__: Any) -> _Answer:
        return self.answer


def _client(status: int, body: bytes) -> KieClient:
    return KieClient(cast("urllib3.PoolManager", _Pool(status, body)), "https://api.kie.ai", lambda: "key")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(
    status=st.sampled_from([200, 201, 302, 400, 404, 429, 500, 503]),
    body=st.one_of(
        st.binary(max_size=200),
        st.builds(lambda code, data: json.dumps({"code": code, "data": data}).encode(), _JSON, _JSON),
    ),
)
@example(status=200, body=b'{"code": 1e400, "data": null}')  # an integer no int() can make
@example(status=200, body=b'{"code": -1e999}')
@example(status=200, body=b"[" * 100_000 + b"]" * 100_000)  # nested deeper than json can read
@example(status=200, body=b'{"code": 200, "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
def test_kie_client_answers_raise_kie2s3_errors_only(status: int, body: bytes) -> None:
    client = _client(status, body)
    for call in (
        lambda: client.download_url("https://tempfile.aiquickdraw.com/p/x.png"),
        lambda: client.record_info("/api/v1/jobs/recordInfo", "t1"),
    ):
        with contextlib.suppress(Kie2S3Error):
            call()


@pytest.mark.parametrize("body", [b'{"code": 1e400}', b"[" * 100_000], ids=["infinite-code", "deep"])
def test_kie_client_unreadable_envelope_is_retryable(body: bytes) -> None:
    with pytest.raises(RetryableError, match="without an envelope"):
        _client(200, body).record_info("/api/v1/jobs/recordInfo", "t1")
