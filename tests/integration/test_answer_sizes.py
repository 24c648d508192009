"""Every answer the API gives fits Lambda's 6 MB response payload, whatever the inputs it accepts.

Through the real handler under the local runtime's payload limits (devstack.payload): an answer
over 6 MB fails there as `Function.ResponseSizeTooLarge`, which API Gateway answers 502. A task may
hold any number of files (each request or callback adds up to 50 new ones), and a file's canonical
source is up to three times the bytes its URL took in the request (non-ASCII is percent-encoded):
so a status document, and a bulk answer of many of them, can outgrow 6 MB. Each document lists the
files that fit, says how many it leaves out, and `GET /tasks/{taskId}?filesFrom=` lists the rest.
"""

import json
import uuid
from typing import Any

from devstack.lambda_runtime import function_environment, http_event, invoke
from devstack.payload import MAX_RESPONSE_BYTES, encoded
from devstack.stack import Stack

from kie2s3.handlers.http import MAX_BODY_BYTES
from kie2s3.handlers.wiring import get_services
from kie2s3.logic.plan import accept
from kie2s3.models import MAX_URL_CHARS, MAX_URLS_PER_REQUEST, Outcome, ParsedCallback, SourceFile

# A character of four UTF-8 bytes: twelve in the canonical source (%F0%9D%92%B3).
WIDE = "\U0001d4b3"
HOST = "https://tempfile.aiquickdraw.com/"


def wide_urls(tag: str, count: int, chars: int) -> list[str]:
    """`count` distinct URLs of `chars` characters, almost all of them WIDE."""
    heads = [f"{HOST}{tag}-{n:03d}-" for n in range(count)]
    return [head + WIDE * (chars - len(head) - 4) + ".png" for head in heads]


def answer(event: dict[str, Any]) -> tuple[int, dict[str, Any], int]:
    """Status, decoded body and the answer's payload size in bytes, as Lambda carries it."""
    result = invoke(event)
    return result["statusCode"], json.loads(result["body"]), len(encoded(result))


def post_copies(body: dict[str, Any]) -> tuple[int, dict[str, Any], int]:
    raw = json.dumps(body, ensure_ascii=False)  # the URLs as UTF-8, as a client sends them
    assert len(raw.encode()) <= MAX_BODY_BYTES
    return answer(http_event("POST", "/copies", body=raw))


def get_task(task_id: str, files_from: int | None = None) -> tuple[int, dict[str, Any], int]:
    query = {} if files_from is None else {"filesFrom": str(files_from)}
    event = http_event(
        "GET", f"/tasks/{task_id}", route="/tasks/{taskId}", path_parameters={"taskId": task_id}, query=query
    )
    return answer(event)


def test_status_document_past_six_mb_is_listed_in_pages(queue_mode: Stack) -> None:
    task_id = uuid.uuid4().hex
    # Recorded first as POST /copies records them (`accept`), 50 at a time, through the logic: 150
    # files of the longest URLs, four-byte characters all (49 KB each in the canonical source).
    earlier = 3
    with function_environment(queue_mode.env):
        for request in range(earlier):
            urls = wide_urls(f"r{request}", MAX_URLS_PER_REQUEST, MAX_URL_CHARS)
            files = tuple(SourceFile(url=u, kind="image") for u in urls)
            accept(
                get_services(),
                ParsedCallback(task_id=task_id, family="market", outcome=Outcome.SUCCESS, files=files),
            )
    # Then a request through the handler, with URLs as long as a 256 KiB body holds 50 of: its answer
    # is the document of all 200 files, past 6 MB in whole.
    chars = (MAX_BODY_BYTES // MAX_URLS_PER_REQUEST - 120) // 4
    status, doc, size = post_copies(
        {"taskId": task_id, "urls": wide_urls("last", MAX_URLS_PER_REQUEST, chars)}
    )
    assert status == 202, doc
    assert size <= MAX_RESPONSE_BYTES
    assert doc["filesOmitted"] > 0
    total = (earlier + 1) * MAX_URLS_PER_REQUEST

    status, first, size = get_task(task_id)
    assert status == 200
    assert size <= MAX_RESPONSE_BYTES
    assert 0 < len(first["files"]) < total
    assert first["filesOmitted"] == total - len(first["files"])
    assert first["state"] == "pending"  # the task's state, from all its files
    listed = [f["index"] for f in first["files"]]
    assert first["nextFilesFrom"] == listed[-1] + 1
    page = first
    while "nextFilesFrom" in page:
        status, page, size = get_task(task_id, page["nextFilesFrom"])
        assert status == 200
        assert size <= MAX_RESPONSE_BYTES
        assert page["state"] == "pending"
        listed += [f["index"] for f in page["files"]]
    assert listed == list(range(total))
    assert "filesOmitted" not in page


def test_bulk_copies_of_tasks_past_six_mb_answer_every_task(queue_mode: Stack) -> None:
    ids = [uuid.uuid4().hex for _ in range(3)]
    for n, task_id in enumerate(ids):
        urls = wide_urls(f"t{n}", MAX_URLS_PER_REQUEST, MAX_URL_CHARS)
        record = {"taskId": task_id, "state": "success", "resultJson": json.dumps({"resultUrls": urls})}
        queue_mode.emulator.add_task("market", task_id, record)

    status, doc, size = post_copies({"taskIds": ids, "family": "market"})

    assert status == 202
    assert size <= MAX_RESPONSE_BYTES
    assert [t["taskId"] for t in doc["tasks"]] == ids
    assert doc["unknown"] == doc["errors"] == []
    for task in doc["tasks"]:
        shown = len(task["files"])
        assert shown + task.get("filesOmitted", 0) == MAX_URLS_PER_REQUEST
        if shown < MAX_URLS_PER_REQUEST:
            assert task["nextFilesFrom"] == task["files"][-1]["index"] + 1 if shown else 0
    assert sum(t.get("filesOmitted", 0) for t in doc["tasks"]) > 0


def test_files_from_must_be_an_index(queue_mode: Stack) -> None:
    status, doc, _ = get_task(uuid.uuid4().hex, -1)
    assert status == 400
    assert doc["message"] == "invalid request"
    assert [d.split(":")[0] for d in doc["details"]] == ["query parameter filesFrom"]
