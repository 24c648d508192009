"""Links to archived files: `GET /tasks` presigns a GET of each copied file; nothing else does."""

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import urllib3
from devstack.callbacks import market_body
from devstack.lambda_runtime import function_environment, http_event, task_status_event
from devstack.stack import Stack
from tests.integration.conftest import post_callback, send, serve, task_document

MIB = 1024**2


def test_get_task_links_each_copied_file_for_the_configured_ttl(inline_mode: Stack, task_id: str) -> None:
    served = serve(inline_mode, task_id, [(".png", 4096), (".mp4", 9 * MIB)])
    status, answer = post_callback(market_body(task_id, list(served)), task_id)
    assert status == 200
    assert all("url" not in f or f["url"] is None for f in answer["files"])  # never back to kie.ai
    doc = task_document(task_id)
    http = urllib3.PoolManager()
    for file, source in zip(doc["files"], served.values(), strict=True):
        query = parse_qs(urlsplit(file["url"]).query)
        assert query["X-Amz-Expires"] == ["3600"]
        expires = datetime.fromisoformat(file["urlExpiresAt"])
        assert 3590 <= (expires - datetime.now(UTC)).total_seconds() <= 3600
        downloaded = http.request("GET", file["url"])
        assert downloaded.status == 200
        assert downloaded.data == source.read(0, source.size)


def test_link_ttl_zero_turns_links_off(stack: Stack, task_id: str) -> None:
    with function_environment({**stack.env, "COPY_MODE": "inline", "PRESIGNED_URL_TTL_SECONDS": "0"}):
        served = serve(stack, task_id, [(".png", 2048)])
        post_callback(market_body(task_id, list(served)), task_id)
        doc = task_document(task_id)
    assert doc["files"][0]["state"] == "copied"
    assert doc["files"][0]["url"] is None
    assert doc["files"][0]["urlExpiresAt"] is None


def test_only_copied_files_are_linked_and_copies_answers_carry_no_link(
    inline_mode: Stack, task_id: str
) -> None:
    served = serve(inline_mode, task_id, [(".png", 2048)])
    missing = f"https://tempfile.aiquickdraw.com/p/{task_id}_missing.png"  # download-url knows it not
    status, answer = send(http_event("POST", "/copies", body={"taskId": task_id, "urls": [*served, missing]}))
    assert status == 200
    assert [f["url"] for f in answer["files"]] == [None, None]
    status, doc = send(task_status_event(task_id))
    assert status == 200
    copied, failed = doc["files"]
    assert (copied["state"], failed["state"]) == ("copied", "failed")
    assert copied["url"] is not None
    assert failed["url"] is None
