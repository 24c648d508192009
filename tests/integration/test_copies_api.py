"""`POST /copies` and `GET /tasks/{taskId}` through the real handler."""

import dataclasses
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devstack.backfill import backfill, local_sender
from devstack.backfill import main as backfill_main
from devstack.kie_emulator import SyntheticFile
from devstack.lambda_runtime import LambdaContext, http_event, invoke, task_status_event
from devstack.stack import Stack
from tests.integration.conftest import (
    FAST_RETRY,
    archived_files,
    objects_under,
    send,
    serve,
    task_document,
)

from kie2s3.adapters import clients
from kie2s3.adapters.kie_client import KieClient
from kie2s3.adapters.secrets import get_secret
from kie2s3.logic.services import Services
from kie2s3.retries import BulkPolicy, KieTimeouts

MIB = 1024**2


def post_copies(body: Any) -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, str) else json.dumps(body)
    return send(http_event("POST", "/copies", body=raw))


def test_copies_by_urls_inline_copies_now(inline_mode: Stack, task_id: str) -> None:
    served = serve(inline_mode, task_id, [(".png", 4096), (".mp4", 9 * MIB)])
    status, doc = post_copies({"taskId": task_id, "urls": list(served)})
    assert status == 200
    assert doc["family"] == "direct"
    assert doc["state"] == "copied"
    assert [f["sha256"] for f in doc["files"]] == [s.sha256_hex() for s in served.values()]


def test_copies_by_urls_queue_mode_answers_202_then_copies(queue_mode: Stack, task_id: str) -> None:
    served = serve(queue_mode, task_id, [(".png", 4096)])
    status, doc = post_copies({"taskId": task_id, "family": "market", "urls": list(served)})
    assert status == 202
    assert doc["state"] == "pending"
    queue_mode.poller().drain()
    status, doc = send(task_status_event(task_id))
    assert status == 200
    assert doc["state"] == "copied"
    assert list(objects_under(queue_mode, f"kie/{task_id}/")) == [f"kie/{task_id}/00.png"]


def test_copies_by_task_id_reads_market_record_info(inline_mode: Stack, task_id: str) -> None:
    served = serve(inline_mode, task_id, [(".png", 2048), (".png", 3072)])
    inline_mode.emulator.add_task(
        "market",
        task_id,
        {"taskId": task_id, "state": "success", "resultJson": json.dumps({"resultUrls": list(served)})},
    )
    status, doc = post_copies({"taskId": task_id, "family": "market"})
    assert status == 200
    assert doc["state"] == "copied"
    assert [f["source"] for f in doc["files"]] == list(served)
    assert inline_mode.emulator.record_info_calls[task_id] == 1


def test_copies_by_task_id_still_running_copies_nothing(inline_mode: Stack, task_id: str) -> None:
    inline_mode.emulator.add_task(
        "market", task_id, {"taskId": task_id, "state": "generating", "resultJson": None}
    )
    status, doc = post_copies({"taskId": task_id, "family": "market"})
    assert status == 200
    assert doc["state"] == "pending"
    assert doc["reason"] == "waiting for kie.ai to finish (generating)"
    assert doc["files"] == []


def test_copies_unknown_task_is_404(inline_mode: Stack, task_id: str) -> None:
    status, answer = post_copies({"taskId": task_id, "family": "market"})
    assert status == 404
    assert task_id in answer["message"]


def test_copies_record_info_rejected_is_502(inline_mode: Stack, task_id: str) -> None:
    inline_mode.emulator.inject_record_info(401, task_id=task_id)
    status, answer = post_copies({"taskId": task_id, "family": "market"})
    assert status == 502
    assert "401" in answer["message"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"taskId": "abc123"}, "give `urls`"),
        ({"taskId": "abc123", "family": "dalle"}, "unknown family"),
        ({"taskId": "abc/123", "urls": ["https://tempfile.aiquickdraw.com/a.png"]}, "invalid request"),
        ({"taskId": "abc123", "urls": []}, "invalid request"),
        (
            {"taskId": "abc123", "urls": [f"https://tempfile.aiquickdraw.com/{n}.png" for n in range(51)]},
            "these URLs name 51 distinct files",
        ),
        (  # the cap counts files, not entries: 102 entries naming 51 files, 1 past the cap
            {
                "taskId": "abc123",
                "urls": [
                    f"https://tempfile.aiquickdraw.com/{n}.png?v={v}" for n in range(51) for v in (1, 2)
                ],
            },
            "at most 50 per request: 1 past the cap",
        ),
        (  # entries are bounded too, even when they name one file
            {
                "taskId": "abc123",
                "urls": [f"https://tempfile.aiquickdraw.com/a.png?v={n}" for n in range(501)],
            },
            "invalid request",
        ),
        ({"taskId": "abc123", "urls": ["x"], "extra": 1}, "invalid request"),
        ({"urls": ["https://tempfile.aiquickdraw.com/a.png"]}, "give taskId with urls"),
        ("not json", "body is not JSON"),
    ],
)
def test_copies_bad_request_is_400(inline_mode: Stack, body: Any, reason: str) -> None:
    status, answer = post_copies(body)
    assert status == 400
    assert reason in answer["message"]


def test_copies_refused_url_is_400_and_records_nothing(inline_mode: Stack, task_id: str) -> None:
    status, answer = post_copies({"taskId": task_id, "urls": ["http://169.254.169.254/latest/meta-data/"]})
    assert status == 400
    assert answer["details"] == [
        "http://169.254.169.254/latest/meta-data/: source scheme 'http' is not allowed"
    ]
    assert send(task_status_event(task_id))[0] == 404


# -- bulk: `{"taskIds": [...], "family": ...}`, for tasks whose callbacks never arrived ------------


def seed_finished(stack: Stack, task_id: str) -> dict[str, SyntheticFile]:
    """A finished Market task whose record-info lists one served file."""
    served = serve(stack, task_id, [(".png", 2048)])
    stack.emulator.add_task(
        "market",
        task_id,
        {"taskId": task_id, "state": "success", "resultJson": json.dumps({"resultUrls": list(served)})},
    )
    return served


def seed_running(stack: Stack, task_id: str) -> None:
    stack.emulator.add_task("market", task_id, {"taskId": task_id, "state": "generating", "resultJson": None})


def new_id() -> str:
    return uuid.uuid4().hex


def test_copies_bulk_records_each_task_with_its_state(inline_mode: Stack) -> None:
    finished, unknown, running = new_id(), new_id(), new_id()
    served = seed_finished(inline_mode, finished)
    seed_running(inline_mode, running)
    status, doc = post_copies({"taskIds": [finished, unknown, running], "family": "market"})
    assert status == 200
    assert set(doc) == {"tasks", "unknown", "errors"}
    assert [t["taskId"] for t in doc["tasks"]] == [finished, running]
    copied, waiting = doc["tasks"]
    assert copied["state"] == "copied"
    assert copied["family"] == "market"
    assert [(f["source"], f["sha256"]) for f in copied["files"]] == [
        (url, file.sha256_hex()) for url, file in served.items()
    ]
    assert archived_files(inline_mode, finished) == {f"kie/{finished}/00.png": 2048}
    assert waiting["state"] == "pending"  # as the single form records a running task
    assert waiting["files"] == []
    assert waiting == task_document(running)
    assert archived_files(inline_mode, running) == {}
    assert doc["unknown"] == [unknown]
    assert send(task_status_event(unknown))[0] == 404
    assert doc["errors"] == []
    for task_id in (finished, unknown, running):
        assert inline_mode.emulator.record_info_calls[task_id] == 1


def test_copies_bulk_queue_mode_answers_202_then_copies(queue_mode: Stack) -> None:
    first, second = new_id(), new_id()
    seed_finished(queue_mode, first)
    seed_finished(queue_mode, second)
    status, doc = post_copies({"taskIds": [first, second], "family": "market"})
    assert status == 202
    assert [(t["taskId"], t["state"]) for t in doc["tasks"]] == [(first, "pending"), (second, "pending")]
    queue_mode.poller().drain()
    assert task_document(first)["state"] == task_document(second)["state"] == "copied"
    assert archived_files(queue_mode, second) == {f"kie/{second}/00.png": 2048}


def test_copies_bulk_without_time_for_one_call_at_its_worst_asks_nothing(inline_mode: Stack) -> None:
    first, second = new_id(), new_id()
    seed_finished(inline_mode, first)
    seed_finished(inline_mode, second)
    body = {"taskIds": [first, second], "family": "market"}
    # The deployed figures: 24 s left is less than one record-info call's 5 s + 15 s and the 5 s reserve.
    answer = invoke(http_event("POST", "/copies", body=body), LambdaContext(timeout_seconds=24))
    doc = json.loads(answer["body"])
    assert answer["statusCode"] == 200
    assert doc["tasks"] == []
    assert [(e["taskId"], e["processed"], e["retryable"]) for e in doc["errors"]] == [
        (first, False, True),
        (second, False, True),
    ]
    assert doc["errors"][0]["message"].startswith("not processed")
    assert inline_mode.emulator.record_info_calls[first] == 0


# The deployed plan (kie.ai connect 5 s + read 15 s, reserve 5 s, API function 29 s) at a tenth, with
# a second more before the first call than deployed, for the warm function's own work before it.
SMALL_KIE = KieTimeouts(connect_seconds=0.5, read_seconds=2.0)
SMALL_BULK = BulkPolicy(reserve_seconds=0.5)
API_TIMEOUT = SMALL_KIE.worst_case_seconds + SMALL_BULK.reserve_seconds + 1.0


@pytest.fixture
def small_timeouts(queue_mode: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The API function with SMALL_KIE's kie.ai client and SMALL_BULK: the deployed plan, ten times faster."""
    from kie2s3.handlers import http, wiring

    def services() -> Services:
        built = wiring.get_services()
        settings = built.settings
        kie = KieClient(
            clients.http_pool(built.policy),
            settings.kie_api_base_url,
            lambda: get_secret(settings.kie_api_key_secret),
            timeouts=SMALL_KIE,
        )
        return dataclasses.replace(built, kie=kie, bulk=SMALL_BULK, retry=FAST_RETRY)

    monkeypatch.setattr(http, "get_services", services)
    yield queue_mode
    queue_mode.emulator.clear_faults()


@pytest.mark.parametrize(
    "answer_after",
    # A slow answer (past it, less than a second call needs is left) well within the read timeout (a
    # loaded machine delays the emulator's answer too), and none before the read timeout.
    [1.2, 5.0],
    ids=["slow", "silent"],
)
def test_copies_bulk_slow_record_info_answers_every_id_within_the_timeout(
    small_timeouts: Stack, answer_after: float
) -> None:
    ids = [new_id() for _ in range(4)]
    for task_id in ids:
        seed_finished(small_timeouts, task_id)
        small_timeouts.emulator.delay_record_info(answer_after, task_id=task_id)
    assert send(task_status_event(new_id()))[0] == 404  # a warm function, as a deployed one mostly is
    context = LambdaContext(function_name="kie2s3-api", timeout_seconds=API_TIMEOUT)

    answer = invoke(http_event("POST", "/copies", body={"taskIds": ids, "family": "market"}), context)

    assert context.get_remaining_time_in_millis() > 0, "the answer came after the function's timeout"
    assert answer["statusCode"] == 202
    doc = json.loads(answer["body"])
    first, *rest = ids
    if answer_after < SMALL_KIE.read_seconds:
        assert [(t["taskId"], t["state"]) for t in doc["tasks"]] == [(first, "pending")]
        tried = []
    else:
        assert doc["tasks"] == []
        tried = [{"taskId": first, "processed": True, "retryable": True}]
    assert doc["unknown"] == []
    assert [{k: e[k] for k in ("taskId", "processed", "retryable")} for e in doc["errors"]] == [
        *tried,
        *({"taskId": t, "processed": False, "retryable": True} for t in rest),
    ]
    assert all(e["message"].startswith("not processed") for e in doc["errors"][len(tried) :])
    assert all("?" not in e["message"] for e in doc["errors"])  # a timed-out call's message: no query
    assert [small_timeouts.emulator.record_info_calls[t] for t in ids] == [1, 0, 0, 0]
    assert [send(task_status_event(t))[0] for t in rest] == [404, 404, 404]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"taskIds": [f"t{n}" for n in range(51)], "family": "market"}, "taskIds: "),
        ({"taskIds": [], "family": "market"}, "taskIds: "),
        ({"taskIds": ["abc123"], "taskId": "abc123", "family": "market"}, "not both"),
        ({"taskIds": ["abc123"], "urls": ["https://tempfile.aiquickdraw.com/a.png"]}, "not both"),
        ({"taskIds": ["abc123"]}, "family: Field required"),
        ({"taskIds": ["abc/123"], "family": "market"}, "taskIds[0]: "),
        ({"taskIds": ["..", "abc"], "family": "market"}, "taskIds[0]: "),
        ({"taskIds": "abc123", "family": "market"}, "taskIds: "),
        ({"taskIds": ["abc123"], "family": "market", "extra": 1}, "extra: Extra inputs are not permitted"),
    ],
)
def test_copies_bulk_bad_body_is_400(inline_mode: Stack, body: Any, reason: str) -> None:
    status, answer = post_copies(body)
    assert status == 400
    assert answer["message"] == "invalid request"
    assert any(reason in detail for detail in answer["details"]), answer["details"]


# -- `make backfill` drives the bulk form --------------------------------------------------------


def test_backfill_local_sender_records_through_the_handler(inline_mode: Stack) -> None:
    finished, unknown, running = new_id(), new_id(), new_id()
    seed_finished(inline_mode, finished)
    seed_running(inline_mode, running)
    out = io.StringIO()
    summary = backfill(local_sender(), "market", [finished, unknown, running], out=out)
    assert summary.recorded == {finished: "copied", running: task_document(running)["state"]}
    assert summary.unknown == [unknown]
    assert not summary.complete  # one id was not recorded: make backfill exits 1
    assert f"queued/recorded  {finished}  copied" in out.getvalue()
    assert f"unknown          {unknown}" in out.getvalue()
    assert archived_files(inline_mode, finished) == {f"kie/{finished}/00.png": 2048}


def test_backfill_without_stack_name_runs_a_local_stack_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = new_id(), new_id()
    tasks = tmp_path / "tasks.txt"
    tasks.write_text(f"# lost in the outage\n{first}\n\n{second}\n")
    argv = ["--family", "market", "--tasks", str(tasks), "--state-dir", str(tmp_path / "no-stack")]
    assert backfill_main(argv) == 1  # no id was recorded
    out = capsys.readouterr().out
    assert "no STACK_NAME and no local stack running: a throwaway local stack, in-process" in out
    assert "unknown to record-info: 2" in out
    assert f"    {first}\n    {second}" in out
