"""Forwarding's pure parts: the forwarded body, the loop guards, and the delivery schedule."""

import itertools
import json

import pytest
from devstack.template import load_template

from kie2s3.logic.forward import forwardable, retry_seconds, same_host, wait_seconds, with_status
from kie2s3.models import FileStatus, StatusDocument
from kie2s3.retries import FORWARD_MAX_RECEIVE_COUNT, ForwardPolicy

DOCUMENT = StatusDocument(
    task_id="t1",
    family="market",
    state="copied",
    files=[FileStatus(index=0, source="https://tempfile.aiquickdraw.com/a.png", state="copied", bytes=3)],
)
POLICY = ForwardPolicy()


@pytest.mark.parametrize(
    "raw",
    [
        b'{"code":200,"data":{"taskId":"t1","n":1.50,"s":"caf\\u00e9"}}',
        b'{\n  "code": 200,\n  "data": {"taskId": "t1"}\n}\n',
        b'{"data": {"taskId": "t1"}, "e": 1E3}   ',
    ],
)
def test_with_status_keeps_kie_bytes_and_adds_one_last_field(raw: bytes) -> None:
    forwarded = with_status(raw, DOCUMENT)
    head = raw.rstrip()[:-1]
    assert forwarded.startswith(head)
    assert forwarded.endswith(b"}")
    parsed = json.loads(forwarded)
    assert list(parsed) == [*json.loads(raw), "kie2s3"]
    assert parsed["kie2s3"] == json.loads(DOCUMENT.model_dump_json(by_alias=True))
    assert parsed["kie2s3"]["taskId"] == "t1"


def test_with_status_refuses_what_is_not_an_object() -> None:
    with pytest.raises(ValueError):
        with_status(b'["taskId"]', DOCUMENT)


def test_forwardable_refuses_a_body_kie2s3_already_forwarded() -> None:
    assert forwardable({"data": {"taskId": "t1"}})
    assert not forwardable({"data": {"taskId": "t1"}, "kie2s3": {}})
    assert forwardable({"data": {"taskId": "t1", "kie2s3": {}}})  # only the top-level field marks it


@pytest.mark.parametrize(
    ("target", "arrived_on", "same"),
    [
        (
            "https://abc.execute-api.us-east-1.amazonaws.com/hook",
            "abc.execute-api.us-east-1.amazonaws.com",
            True,
        ),
        (
            "https://ABC.execute-api.us-east-1.amazonaws.com:443/x",
            "abc.execute-api.us-east-1.amazonaws.com",
            True,
        ),
        ("https://hooks.example.com/kie", "abc.execute-api.us-east-1.amazonaws.com", False),
        ("https://api.example.com:8443/kie", "api.example.com", False),
        ("http://127.0.0.1:9000/kie", "127.0.0.1:9000", True),
        ("http://127.0.0.1:9000/kie", "127.0.0.1:3000", False),
        ("https://hooks.example.com/kie", None, False),
        ("https://hooks.example.com/kie", "hooks.example.com\\@evil", False),  # not a host: never a match
    ],
)
def test_same_host_compares_host_and_port(target: str, arrived_on: str | None, same: bool) -> None:
    assert same_host(target, arrived_on) is same


def test_wait_for_files_doubles_and_never_passes_15_minutes() -> None:
    age, waits = 0.0, []
    while age < POLICY.settle_seconds:
        waits.append(wait_seconds(POLICY, age))
        age += waits[-1]
    assert waits[:5] == [5, 5, 10, 20, 40]
    assert max(waits) == POLICY.wait_max_seconds
    assert age == POLICY.settle_seconds  # the last wait ends exactly at 15 minutes


def _schedule(first_attempt_age: float, waits: int) -> float:
    """The age of a job when it is dead-lettered: `waits` deliveries waiting for files, then failures."""
    age = first_attempt_age
    for _ in range(FORWARD_MAX_RECEIVE_COUNT - waits):
        age += retry_seconds(POLICY, age)
    return age


def _waits_until_settled() -> int:
    age, deliveries = 0.0, 0
    while age < POLICY.settle_seconds:
        age += wait_seconds(POLICY, age)
        deliveries += 1
    return deliveries


def test_retries_go_on_for_hours_and_end_before_the_queue_forgets_the_job() -> None:
    # kie.ai gives up after 3 retries in about 21 minutes; the forward goes on for half a day or more,
    # whether it was tried at once or only after 15 minutes of waiting for its files.
    retention = load_template()["Resources"]["ForwardQueue"]["Properties"]["MessageRetentionPeriod"]
    at_once = _schedule(0.0, 0)
    after_waiting = _schedule(POLICY.settle_seconds, _waits_until_settled())
    for span in (at_once, after_waiting):
        assert 12 * 3600 <= span < retention
    assert FORWARD_MAX_RECEIVE_COUNT - _waits_until_settled() >= 10  # attempts left after the longest wait


def test_retry_delay_doubles_from_30_seconds_to_an_hour() -> None:
    ages = [0.0]
    for _ in range(9):
        ages.append(ages[-1] + retry_seconds(POLICY, ages[-1]))
    delays = [b - a for a, b in itertools.pairwise(ages)]
    assert delays[:7] == [30, 30, 60, 120, 240, 480, 960]
    assert delays[-1] == POLICY.retry_max_seconds
