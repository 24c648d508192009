"""KeyTemplate and what users search by: keys laid out by date and model, computed once and stored;
each object's metadata and tags (single-part and multipart)."""

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from devstack.callbacks import market_body
from devstack.lambda_runtime import function_environment, http_event, invoke, sqs_event
from devstack.stack import Stack
from tests.integration.conftest import (
    archived_files,
    objects_under,
    post_callback,
    ranges_for,
    send,
    serve,
    task_document,
    without_links,
)

from kie2s3.errors import ConfigurationError
from kie2s3.logic.services import DEFAULT_SHAPE
from kie2s3.sources import canonical_url

MIB = 1024**2
DATED = "{prefix}{yyyy}/{mm}/{dd}/{family}/{model}/{taskId}/{index}{ext}"
MODEL = "bytedance/seedream-v4-text-to-image"
MODEL_SEGMENT = "bytedance-seedream-v4-text-to-image"


@pytest.fixture
def dated_keys(stack: Stack) -> Iterator[Stack]:
    """Queue mode, deployed with KeyTemplate=DATED."""
    with function_environment({**stack.env, "KEY_TEMPLATE": DATED}):
        yield stack


def _day(stack: Stack, task_id: str) -> str:
    """`yyyy/mm/dd` of the task item's created_at (UTC), as the ledger holds it."""
    item = stack.client("dynamodb").get_item(
        TableName=stack.env["TASKS_TABLE"], Key={"pk": {"S": task_id}, "sk": {"S": "TASK"}}
    )["Item"]
    return datetime.fromisoformat(item["created_at"]["S"]).strftime("%Y/%m/%d")


def _stored(stack: Stack, key: str) -> tuple[bytes, dict[str, str], dict[str, str]]:
    """An object's bytes, user metadata and tags."""
    s3 = stack.client("s3")
    found = s3.get_object(Bucket=stack.bucket, Key=key)
    tags = s3.get_object_tagging(Bucket=stack.bucket, Key=key)["TagSet"]
    return found["Body"].read(), found["Metadata"], {t["Key"]: t["Value"] for t in tags}


def _post_copies(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return send(http_event("POST", "/copies", body=body))


def test_key_template_dated_model_keys_are_as_specified(dated_keys: Stack, task_id: str) -> None:
    served = serve(dated_keys, task_id, [(".png", 4096), (".mp4", 9 * MIB)])
    assert post_callback(market_body(task_id, list(served), model=MODEL), task_id)[0] == 200
    dated_keys.poller().drain()

    doc = task_document(task_id)
    base = f"kie/{_day(dated_keys, task_id)}/market/{MODEL_SEGMENT}/{task_id}"
    assert doc["state"] == "copied"
    assert [f["key"] for f in doc["files"]] == [f"{base}/00.png", f"{base}/01.mp4"]
    for entry, source in zip(doc["files"], served.values(), strict=True):
        body, metadata, tags = _stored(dated_keys, entry["key"])  # 00.png one part, 01.mp4 two
        assert body == source.read(0, source.size)
        assert (metadata["task-id"], metadata["model"], metadata["file-index"]) == (
            task_id,
            MODEL,
            str(entry["index"]),
        )
        assert tags == {"sha256": source.sha256_hex(), "kie2s3:family": "market", "kie2s3:model": MODEL}


def test_key_template_keys_are_stored_once_whatever_comes_later(stack: Stack, task_id: str) -> None:
    """Recorded under today's layout; redeployed with DATED, a duplicate callback and a POST /copies
    without a model (family "direct") of the same files store nothing twice and move no key."""
    served = serve(stack, task_id, [(".png", 4096), (".mp4", 9 * MIB)])
    urls = list(served)
    body = market_body(task_id, urls, model=MODEL)
    with stack.function():
        post_callback(body, task_id)
        stack.poller().drain()
        first = task_document(task_id)
    keys = [f"kie/{task_id}/00.png", f"kie/{task_id}/01.mp4"]
    assert [f["key"] for f in first["files"]] == keys

    with function_environment({**stack.env, "KEY_TEMPLATE": DATED}):
        assert post_callback(body, task_id)[0] == 200
        assert _post_copies({"taskId": task_id, "urls": urls})[0] == 202
        stack.poller().drain()
        again = task_document(task_id)

    assert without_links(again["files"]) == without_links(first["files"])
    stored = {
        k: n for k, n in objects_under(stack, "kie/").items() if task_id in k and "/callbacks/" not in k
    }
    assert stored == archived_files(stack, task_id) == {keys[0]: 4096, keys[1]: 9 * MIB}
    for url, source in served.items():
        assert stack.emulator.download_url_calls[url] == 1
        assert stack.emulator.file_requests[source.name] == ranges_for(source.size)


def test_key_template_new_file_of_a_known_task_uses_the_stored_model(dated_keys: Stack, task_id: str) -> None:
    """A POST /copies without a model adds a file: its key takes the model the task item holds."""
    served = serve(dated_keys, task_id, [(".png", 4096), (".webp", 2048)])
    first, second = served
    post_callback(market_body(task_id, [first], model=MODEL), task_id)
    assert _post_copies({"taskId": task_id, "family": "market", "urls": [second]})[0] == 202
    dated_keys.poller().drain()
    base = f"kie/{_day(dated_keys, task_id)}/market/{MODEL_SEGMENT}/{task_id}"
    assert [f["key"] for f in task_document(task_id)["files"]] == [f"{base}/00.png", f"{base}/01.webp"]


@pytest.mark.parametrize(
    ("template", "complaint"),
    [
        ("{prefix}{taskId}/{file}{ext}", "{file}"),
        # Issue 21 (7): task k1's file 100 and task k10's file 0 would share a key.
        ("{prefix}{taskId}{index}{ext}", "{taskId} must be a whole path segment"),
        ("{prefix}{index}{taskId}/{ext}", "{taskId} must be a whole path segment"),
    ],
)
def test_key_template_bad_value_fails_the_function_start_naming_the_variable(
    stack: Stack, task_id: str, template: str, complaint: str
) -> None:
    bad = {**stack.env, "KEY_TEMPLATE": template}
    with function_environment(bad):
        status, answer = post_callback(
            market_body(task_id, ["https://tempfile.aiquickdraw.com/p/x.png"]), task_id
        )
        assert status == 500
        assert "KEY_TEMPLATE" in answer["message"]
        assert complaint in answer["message"]
        job = {
            "task_id": task_id,
            "index": 0,
            "source": "https://x",
            "kind": "file",
            "family": "market",
            "key": "k",
        }
        message = {"MessageId": "m-1", "ReceiptHandle": "r-1", "Body": json.dumps(job)}
        with pytest.raises(ConfigurationError, match="KEY_TEMPLATE"):
            invoke(sqs_event([message], "arn:aws:sqs:us-east-1:123456789012:copy-queue"))
    assert objects_under(stack, f"kie/{task_id}/") == {}


# -- what users search by: metadata and tags ------------------------------------------------------


def _expected_tags(sha256: str, model: str = MODEL) -> dict[str, str]:
    return {"sha256": sha256, "kie2s3:family": "market", "kie2s3:model": model}


def test_metadata_and_tags_on_single_part_and_multipart_objects(queue_mode: Stack, task_id: str) -> None:
    served = serve(queue_mode, task_id, [(".png", 4096), (".mp4", 12 * MIB)])
    post_callback(market_body(task_id, list(served), model=MODEL), task_id)
    queue_mode.poller().drain()
    doc = task_document(task_id)
    for entry, (url, source) in zip(doc["files"], served.items(), strict=True):
        body, metadata, tags = _stored(queue_mode, entry["key"])
        digest = hashlib.sha256(body).hexdigest()
        assert digest == source.sha256_hex()
        expected = {
            "task-id": task_id,
            "family": "market",
            "model": MODEL,
            "file-index": str(entry["index"]),
            "source": canonical_url(url),
        }
        if source.size <= DEFAULT_SHAPE.part_bytes:  # a single PUT knows the digest before it writes
            expected["sha256"] = digest
        assert metadata == expected
        # A multipart object's one tag write carries every tag, sha256 included.
        assert tags == _expected_tags(digest)


def test_tags_of_an_object_found_untagged_are_the_whole_set(queue_mode: Stack, task_id: str) -> None:
    """An earlier copy completed but died before tagging: the copy that finds it tags it in full."""
    ((url, source),) = serve(queue_mode, task_id, [(".mp4", 9 * MIB)]).items()
    queue_mode.client("s3").put_object(
        Bucket=queue_mode.bucket, Key=f"kie/{task_id}/00.mp4", Body=source.read(0, source.size)
    )
    post_callback(market_body(task_id, [url], model=MODEL), task_id)
    queue_mode.poller().drain()
    assert task_document(task_id)["state"] == "copied"
    assert _stored(queue_mode, f"kie/{task_id}/00.mp4")[2] == _expected_tags(source.sha256_hex())


def test_metadata_without_a_model_names_the_family(queue_mode: Stack, task_id: str) -> None:
    """A result that names no model: `model` is the family, in metadata and tags alike."""
    (url,) = serve(queue_mode, task_id, [(".png", 4096)])
    body = market_body(task_id, [url])
    del body["data"]["model"]
    post_callback(body, task_id)
    queue_mode.poller().drain()
    _, metadata, tags = _stored(queue_mode, f"kie/{task_id}/00.png")
    assert (metadata["model"], tags["kie2s3:model"]) == ("market", "market")
