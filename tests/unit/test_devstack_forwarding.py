"""The local stack's forwarding: which queues it polls, and the loops it refuses before starting."""

from pathlib import Path

import pytest
from devstack.cli import UserError
from devstack.serve import refuse_loop, sqs_functions
from devstack.template import load_template
from devstack.up import up

FORWARDING = {"ForwardUrl": "http://127.0.0.1:9000/hook", "ForwardHmacSecretId": "kie2s3/forward-hmac-key"}


def test_sqs_functions_poll_the_forward_queue_only_when_forwarding() -> None:
    template = load_template()
    assert sqs_functions(template, {}) == [("CopyWorkerFunction", "COPY_QUEUE_URL")]
    assert sqs_functions(template, FORWARDING) == [
        ("CopyWorkerFunction", "COPY_QUEUE_URL"),
        ("ForwardFunction", "FORWARD_QUEUE_URL"),
    ]


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:3000/callbacks/kie", "http://localhost:3000/hook", "http://[::1]:3000/x?token=t"],
)
def test_forward_url_at_the_local_api_is_refused(url: str) -> None:
    with pytest.raises(UserError, match="is the local API itself: forwarding there would loop") as refused:
        refuse_loop(url, 3000)
    assert "token" not in str(refused.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/hook", "https://hooks.example.com:3000/kie"])
def test_forward_url_elsewhere_is_taken(url: str) -> None:
    refuse_loop(url, 3000)


def test_make_up_refuses_a_loop_before_starting_anything(tmp_path: Path) -> None:
    state = tmp_path / "up"
    with pytest.raises(UserError, match="local API itself"):
        up(state, 3999, "queue", forward_url="http://127.0.0.1:3999/hook")
    with pytest.raises(UserError, match="give one"):
        up(state, 3999, "queue", forward_url="https://hooks.example.com/kie", receiver=True)
    assert not state.exists()
