"""The cap on one delivery's files counts distinct canonical sources, never list entries (issue #21,
defect 3): through `app.lambda_handler` against the local stack, for a callback and for `POST /copies`."""

from typing import Any

from devstack.callbacks import market_body
from devstack.lambda_runtime import http_event
from devstack.stack import Stack
from tests.integration.conftest import (
    archived_files,
    post_callback,
    send,
    serve,
    task_document,
    without_links,
)

from kie2s3.models import MAX_URLS_PER_REQUEST

CAP = MAX_URLS_PER_REQUEST
SIZE = 1024


def _copies(task_id: str, urls: list[str]) -> tuple[int, dict[str, Any]]:
    return send(http_event("POST", "/copies", body={"taskId": task_id, "urls": urls}))


def _all_archived(stack: Stack, task_id: str, doc: dict[str, Any], sources: list[str]) -> None:
    """The task is `copied`, its files exactly `sources` in order, each stored once with its bytes."""
    assert (doc["state"], doc.get("reason")) == ("copied", None), doc.get("reason")
    assert [f["source"] for f in doc["files"]] == sources
    assert {f["state"] for f in doc["files"]} == {"copied"}
    assert archived_files(stack, task_id) == {f["key"]: SIZE for f in doc["files"]}
    assert without_links(task_document(task_id)["files"]) == without_links(doc["files"])


def test_cap_a_callback_naming_a_file_again_under_a_query_string_archives_every_file(
    inline_mode: Stack, task_id: str
) -> None:
    sources = list(serve(inline_mode, task_id, [(".png", SIZE)] * CAP))

    # Before: the first 50 entries were planned, so the 50th file was never archived, and the task
    # read `failed` with "1 files past the first 50 of one callback were not archived".
    status, doc = post_callback(market_body(task_id, [*sources, f"{sources[0]}?v=2"]), task_id)

    assert status == 200
    _all_archived(inline_mode, task_id, doc, sources)


def test_cap_copies_sixty_urls_naming_fifty_files_archive_every_file(
    inline_mode: Stack, task_id: str
) -> None:
    sources = list(serve(inline_mode, task_id, [(".png", SIZE)] * CAP))

    # Before: 400, "invalid request" (more than 50 entries), and nothing archived.
    status, doc = _copies(task_id, [*sources, *(f"{url}?token=t" for url in sources[:10])])

    assert status == 200, doc
    _all_archived(inline_mode, task_id, doc, sources)
