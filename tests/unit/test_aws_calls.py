"""devstack.aws_calls: the requests of an invocation (and of the threads it starts) are its function's."""

import json
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from devstack import aws_calls


@pytest.fixture
def recorder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> aws_calls.CallRecorder:
    found = aws_calls.CallRecorder(tmp_path / "calls.jsonl", environ={"TASKS_TABLE": "tasks"})
    found.install()
    monkeypatch.setattr(aws_calls, "_RECORDER", [found])
    return found


def _calls(recorder: aws_calls.CallRecorder) -> list[dict[str, Any]]:
    recorder.flush()
    lines = recorder.path.read_text().splitlines() if recorder.path.exists() else []
    return [d for d in map(json.loads, lines) if d["kind"] == "call"]


def _s3() -> Any:
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    for _ in range(3):
        stubber.add_response(
            "put_object", {}, {"Bucket": "b", "Key": "kie/1", "Body": b"x", "Tagging": "a=b"}
        )
    stubber.activate()
    return client


def test_an_invocations_requests_and_its_threads_are_its_functions(recorder: aws_calls.CallRecorder) -> None:
    client = _s3()
    client.put_object(Bucket="b", Key="kie/1", Body=b"x", Tagging="a=b")  # the test's own: not recorded
    with aws_calls.acting_as("CopyWorkerFunction"):
        part = threading.Thread(
            target=lambda: client.put_object(Bucket="b", Key="kie/1", Body=b"x", Tagging="a=b")
        )
        part.start()
        part.join()
    calls = _calls(recorder)
    assert [(c["function"], c["origin"], c["operation"], c["params"]) for c in calls] == [
        ("CopyWorkerFunction", "code", "PutObject", {"Bucket": "b", "Key": "kie/1", "Tagging": True})
    ]


def test_lambdas_own_requests_are_the_functions_with_origin_lambda(recorder: aws_calls.CallRecorder) -> None:
    aws_calls.note_lambda("EventsFunction", "dynamodb", "ListStreams", {})
    assert [(c["function"], c["origin"], c["operation"]) for c in _calls(recorder)] == [
        ("EventsFunction", "lambda", "ListStreams")
    ]
