"""`make backfill`: the task file, the batches of 50, the summary, and the SigV4 sender (no network)."""

import io
import json
import os
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from devstack import backfill as backfill_module
from devstack.backfill import (
    BATCH_SIZE,
    api_url_of,
    backfill,
    deployed_sender,
    main,
    read_task_ids,
)
from devstack.cli import run
from devstack.running import StackState
from tests.local_state import running, supervisor

__all__ = ["running", "supervisor"]  # the fixtures

FAMILY = "market"


def ids(count: int, prefix: str = "task") -> list[str]:
    return [f"{prefix}{n:03d}" for n in range(count)]


class FakeApi:
    """Answers `POST /copies` bulk bodies as the route does: per id, from a table of outcomes; with
    `room`, only that many ids of a request are reached, the rest answered as not processed."""

    def __init__(
        self, outcomes: dict[str, Any] | None = None, status: int = 202, room: int | None = None
    ) -> None:
        self.outcomes = outcomes or {}  # id -> state | "unknown" | (message, retryable) | [outcomes per try]
        self.status = status
        self.room = room
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.bodies.append(body)
        if self.status not in (200, 202):
            return self.status, {"message": "Forbidden"}
        answer: dict[str, Any] = {"tasks": [], "unknown": [], "errors": []}
        for position, task_id in enumerate(body["taskIds"]):
            if self.room is not None and position >= self.room:
                unreached = {
                    "taskId": task_id,
                    "message": "not processed",
                    "retryable": True,
                    "processed": False,
                }
                answer["errors"].append(unreached)
                continue
            outcome = self.outcomes.get(task_id, "pending")
            if isinstance(outcome, list):
                outcome = outcome.pop(0)
            if outcome == "unknown":
                answer["unknown"].append(task_id)
            elif isinstance(outcome, tuple):
                message, retryable = outcome
                error = {"taskId": task_id, "message": message, "retryable": retryable, "processed": True}
                answer["errors"].append(error)
            else:
                answer["tasks"].append({"taskId": task_id, "family": FAMILY, "state": outcome, "files": []})
        return self.status, answer


def test_read_task_ids_skips_blanks_and_comments_and_collapses_duplicates() -> None:
    lines = [
        "# tasks of 2026-11-29, callbacks lost in the outage",
        "",
        "  7c1e0f3ab2d94c55a1e6f0b9d2c4a871  ",
        "task_flux_1732876543210   # the flux one",
        "\t",
        "7c1e0f3ab2d94c55a1e6f0b9d2c4a871",
    ]
    assert read_task_ids(lines) == ["7c1e0f3ab2d94c55a1e6f0b9d2c4a871", "task_flux_1732876543210"]


@pytest.mark.parametrize("bad", ["abc/123", "../etc", "two ids", "x" * 129])
def test_read_task_ids_names_the_line_of_a_bad_id(bad: str) -> None:
    with pytest.raises(ValueError, match=r"line 3: .* is not a kie\.ai task id"):
        read_task_ids(["# header", "good1", bad])


def test_backfill_sends_batches_of_50_in_file_order() -> None:
    api = FakeApi()
    summary = backfill(api, FAMILY, ids(120), out=io.StringIO())
    assert BATCH_SIZE == 50
    assert [body["taskIds"] for body in api.bodies] == [ids(120)[:50], ids(120)[50:100], ids(120)[100:]]
    assert all(body["family"] == FAMILY for body in api.bodies)
    assert summary.recorded == dict.fromkeys(ids(120), "pending")
    assert summary.complete


def test_backfill_prints_each_batch_and_the_total() -> None:
    api = FakeApi({"a1": "copied", "a2": "unknown", "a3": ("kie.ai answered code 401: no", False)})
    out = io.StringIO()
    summary = backfill(api, FAMILY, ["a1", "a2", "a3", "a4"], out=out)
    text = out.getvalue()
    assert "batch 1: 4 task(s), HTTP 202" in text
    assert "  queued/recorded  a1  copied" in text
    assert "  queued/recorded  a4  pending" in text
    assert "  unknown          a2  (record-info does not know it)" in text
    assert "  error            a3  kie.ai answered code 401: no" in text
    total = text[text.index("total:") :]
    assert "total: 4 task(s) of family market in 1 batch(es)" in total
    assert "queued/recorded: 2 (copied 1, pending 1)" in total
    assert "unknown to record-info: 1\n    a2" in total
    assert "errors: 1\n    a3: kie.ai answered code 401: no" in total
    assert summary.recorded == {"a1": "copied", "a4": "pending"}
    assert summary.unknown == ["a2"]
    assert summary.errors == {"a3": "kie.ai answered code 401: no"}
    assert not summary.complete


def test_backfill_sends_retryable_errors_again_in_a_later_batch() -> None:
    throttled = ("kie.ai answered code 429: slow down", True)
    api = FakeApi({"b1": [throttled, "copied"], "b2": [throttled, throttled, throttled]})
    out = io.StringIO()
    summary = backfill(api, FAMILY, ["b1", "b2", "b3"], out=out, attempts=3)
    assert [body["taskIds"] for body in api.bodies] == [["b1", "b2", "b3"], ["b1", "b2"], ["b2"]]
    assert summary.recorded == {"b3": "pending", "b1": "copied"}
    assert summary.errors == {"b2": "kie.ai answered code 429: slow down"}
    assert "(sent again in a later batch)" in out.getvalue()


def test_backfill_sends_unprocessed_ids_again_without_counting_a_try() -> None:
    api = FakeApi(room=2)
    out = io.StringIO()
    summary = backfill(api, FAMILY, ["c1", "c2", "c3", "c4", "c5"], out=out, attempts=1)
    assert [body["taskIds"] for body in api.bodies] == [
        ["c1", "c2", "c3", "c4", "c5"],
        ["c3", "c4", "c5"],
        ["c5"],
    ]
    assert summary.recorded == dict.fromkeys(["c1", "c2", "c3", "c4", "c5"], "pending")
    assert summary.complete
    assert (
        "  not processed    c3  (no time left in the request: sent again in a later batch)" in out.getvalue()
    )


def test_backfill_stops_when_a_batch_gets_nothing_done_and_lists_the_unprocessed() -> None:
    api = FakeApi(room=0)
    out = io.StringIO()
    summary = backfill(api, FAMILY, ids(60), out=out)
    assert [len(body["taskIds"]) for body in api.bodies] == [50]
    assert summary.not_processed == ids(60)
    assert summary.errors == {}
    assert not summary.complete
    text = out.getvalue()
    assert "nothing processed: the API had no time for any task of this batch; stopping" in text
    assert "not processed (no time left in the API's requests): 60\n    task000\n" in text


def test_backfill_stops_at_a_refused_batch_and_lists_what_was_not_sent() -> None:
    api = FakeApi(status=403)
    out = io.StringIO()
    summary = backfill(api, FAMILY, ids(60), out=out)
    assert len(api.bodies) == 1
    assert summary.unsent == ids(60)
    assert summary.recorded == {}
    assert not summary.complete
    assert "HTTP 403: Forbidden" in out.getvalue()
    assert "not sent: 60" in out.getvalue()


def test_api_url_of_reads_the_stack_output() -> None:
    cloudformation = boto3.client("cloudformation", region_name="eu-west-1")
    with Stubber(cloudformation) as stub:
        stub.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": "kie2s3",
                        "CreationTime": "2026-11-01T00:00:00Z",
                        "StackStatus": "UPDATE_COMPLETE",
                        "Outputs": [
                            {"OutputKey": "BucketName", "OutputValue": "archive"},
                            {
                                "OutputKey": "ApiUrl",
                                "OutputValue": "https://a1b2.execute-api.eu-west-1.amazonaws.com",
                            },
                        ],
                    }
                ]
            },
            {"StackName": "kie2s3"},
        )
        assert api_url_of(cloudformation, "kie2s3") == "https://a1b2.execute-api.eu-west-1.amazonaws.com"


class CapturingHttp:
    """Stands in for botocore's URLLib3Session: keeps the prepared request, answers 202."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def send(self, request: Any) -> Any:
        self.requests.append(request)
        body = json.dumps({"tasks": [], "unknown": ["t1"], "errors": []}).encode()
        return type("Answer", (), {"status_code": 202, "content": body})()


def test_deployed_sender_signs_with_sigv4_for_execute_api() -> None:
    session = boto3.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="us-east-1"
    )
    http = CapturingHttp()
    send = deployed_sender(session, "https://a1b2.execute-api.eu-west-1.amazonaws.com/", http=http)
    status, answer = send({"taskIds": ["t1"], "family": FAMILY})
    assert (status, answer["unknown"]) == (202, ["t1"])
    [request] = http.requests
    assert request.method == "POST"
    assert request.url == "https://a1b2.execute-api.eu-west-1.amazonaws.com/copies"
    assert json.loads(request.body) == {"taskIds": ["t1"], "family": FAMILY}
    authorization = request.headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in authorization  # the API's region, from its URL
    assert "x-amz-date" in {k.lower() for k in request.headers}


def test_main_refuses_a_task_file_with_a_bad_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tasks = tmp_path / "tasks.txt"
    tasks.write_text("good1\nbad/id\n")
    assert run(main, ["--family", FAMILY, "--tasks", str(tasks)]) == 2
    assert capsys.readouterr().err == f"error: TASKS={tasks}: line 2: 'bad/id' is not a kie.ai task id\n"


def test_backfill_with_ids_record_info_does_not_know_is_not_complete() -> None:
    summary = backfill(FakeApi({"a2": "unknown"}), FAMILY, ["a1", "a2"], out=io.StringIO())
    assert summary.recorded == {"a1": "pending"}
    assert summary.unknown == ["a2"]
    assert not summary.complete


@pytest.mark.parametrize(
    ("family", "said"),
    [
        ("dalle", "error: FAMILY=dalle: unknown family 'dalle'; expected one of: "),
        ("unknown", "error: FAMILY=unknown: family 'unknown' has no record-info endpoint: give `urls`"),
    ],
)
def test_main_checks_the_family_before_anything_else(
    family: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No task file and no stack: the family is judged first, as the API judges it.
    assert run(main, ["--family", family, "--tasks", str(tmp_path / "missing.txt")]) == 2
    assert capsys.readouterr().err.startswith(said)


def test_main_backfills_through_the_running_local_stack(
    running: StackState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = tmp_path / "tasks.txt"
    tasks.write_text("a1\na2\n")
    seen: list[dict[str, str]] = []
    api = FakeApi({"a2": "unknown"})

    def sender() -> Any:
        def send(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            seen.append(dict(os.environ))
            return api(body)

        return send

    monkeypatch.setattr(backfill_module, "local_sender", sender)
    monkeypatch.setattr(backfill_module, "_to_throwaway", lambda *_: pytest.fail("a throwaway stack started"))
    argv = ["--family", FAMILY, "--tasks", str(tasks), "--state-dir", str(running.directory)]
    assert run(main, argv) == 1  # a2 was not recorded
    assert [body["taskIds"] for body in api.bodies] == [["a1", "a2"]]
    assert seen[0]["TASKS_TABLE"] == running.env["TASKS_TABLE"]  # the stack's ledger
    assert "to the running local stack (http://127.0.0.1:3000, queue mode)" in capsys.readouterr().out
