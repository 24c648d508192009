"""The API end to end: requests over HTTP, archived files read back from S3."""

import hashlib
import json
import time

import pytest
from tests.e2e.conftest import Origin, ResultFile, Target, kie_signature, market_callback

pytestmark = pytest.mark.e2e


def assert_archived(target: Target, document: dict[str, object], files: list[ResultFile]) -> None:
    """Every file copied, under the task's prefix in the bucket, with the bytes kie.ai served."""
    assert document["state"] == "copied", document
    entries = document["files"]
    assert isinstance(entries, list)
    assert [entry["state"] for entry in entries] == ["copied"] * len(files)
    for entry, file in zip(entries, files, strict=True):
        assert entry["bucket"] == target.bucket
        assert document["taskId"] in entry["key"]  # whatever the stack's KeyTemplate, it holds {taskId}
        stored = target.stored(entry["key"])
        assert len(stored) == entry["bytes"]
        assert hashlib.sha256(stored).hexdigest() == entry["sha256"]
        if file.sha256 is not None:
            assert entry["sha256"] == file.sha256


def test_callback_signed_by_kie_is_archived(target: Target, origin: Origin, new_task: str) -> None:
    if target.hmac_key is None:
        pytest.skip("KIE_WEBHOOK_HMAC_KEY is not set: the deployed stack's callbacks cannot be signed")
    files = origin.files(2)
    body = json.dumps(market_callback(new_task, [f.url for f in files])).encode()
    answer = target.request(
        "POST",
        "/callbacks/kie",
        body=body,
        headers=kie_signature(target.hmac_key, new_task, int(time.time())),
    )
    assert answer.status == 200, answer.raw
    assert answer.json["taskId"] == new_task
    assert_archived(target, target.until_done(new_task), files)


def test_copies_by_url_archives_the_file(target: Target, origin: Origin, new_task: str) -> None:
    [file] = origin.files(1)
    answer = target.post_json("/copies", {"taskId": new_task, "urls": [file.url]})
    assert answer.status in (200, 202), answer.raw
    assert [f["source"] for f in answer.json["files"]] == [file.url]
    assert_archived(target, target.until_done(new_task), [file])


def test_copies_by_task_id_archives_what_record_info_lists(target: Target, origin: Origin) -> None:
    task_id, family = origin.task()
    answer = target.post_json("/copies", {"taskId": task_id, "family": family})
    assert answer.status in (200, 202), answer.raw
    document = target.until_done(task_id)
    assert document["family"] == family
    assert_archived(target, document, [ResultFile(f["source"], None) for f in document["files"]])


def test_get_task_answers_the_status_document(target: Target, origin: Origin, new_task: str) -> None:
    [file] = origin.files(1)
    assert target.post_json("/copies", {"taskId": new_task, "urls": [file.url]}).status in (200, 202)
    target.until_done(new_task)
    answer = target.task(new_task)
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("application/json")
    document = answer.json
    assert set(document) >= {"taskId", "family", "state", "files"}
    assert set(document["files"][0]) >= {"index", "source", "state", "bucket", "key", "bytes", "sha256"}


def test_get_task_unknown_is_404(target: Target, new_task: str) -> None:
    answer = target.task(new_task)
    assert answer.status == 404
    assert answer.json["message"]


def test_callback_without_signature_is_401(target: Target, new_task: str) -> None:
    answer = target.post_json("/callbacks/kie", market_callback(new_task, []))
    assert answer.status == 401
    assert "X-Webhook" in answer.json["message"]


def test_callback_with_a_wrong_signature_is_401(target: Target, new_task: str) -> None:
    headers = kie_signature("not-the-key", new_task, int(time.time()))
    answer = target.post_json("/callbacks/kie", market_callback(new_task, []), headers=headers)
    assert answer.status == 401
    assert target.task(new_task).status == 404  # nothing recorded


def test_callback_body_not_json_is_400(target: Target, new_task: str) -> None:
    headers = kie_signature("any", new_task, int(time.time()))
    answer = target.request("POST", "/callbacks/kie", body=b"this is not JSON", headers=headers)
    assert answer.status == 400
    assert answer.json["message"] == "body is not JSON"


def test_copies_with_a_malformed_task_id_is_400(target: Target) -> None:
    answer = target.post_json(
        "/copies", {"taskId": "not a task id!", "urls": ["https://tempfile.aiquickdraw.com/x.png"]}
    )
    assert answer.status == 400
    assert any("taskId" in detail for detail in answer.json["details"])


def test_body_over_256_kib_is_413(target: Target, new_task: str) -> None:
    padding = "x" * (256 * 1024)
    answer = target.post_json("/copies", {"taskId": new_task, "urls": [], "padding": padding})
    assert answer.status == 413
    assert "256" in answer.json["message"] or "limit" in answer.json["message"]
