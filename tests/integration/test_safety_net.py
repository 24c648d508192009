"""The safety net over Market results of unknown shape, results without files, and the replay of
unrecognised callbacks once a parser knows them (issue #13: items 3 and 4), through the handler."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from devstack.callbacks import market_body, serve_result_files
from devstack.lambda_runtime import function_environment
from devstack.stack import Stack
from tests.integration.conftest import (
    archived_files,
    counted,
    objects_under,
    post_callback,
    printed,
    reconcile,
    task_document,
)

from kie2s3.families import PARSERS
from kie2s3.handlers.wiring import get_services
from kie2s3.logic import receive

T = "https://tempfile.aiquickdraw.com"


def _net_body(task_id: str, result: dict[str, Any], param_url: str) -> dict[str, Any]:
    body = market_body(task_id, [], model="ai-music-api/separate-vocals")
    body["data"]["resultJson"] = json.dumps(result)
    body["data"]["param"] = json.dumps({"input": {"audio_url": param_url}})
    return body


def _shapes(task_id: str) -> list[tuple[dict[str, Any], list[str], list[str]]]:
    """(resultJson, the files the net must archive, inputs it must never fetch), three invented shapes."""
    out = [f"{T}/s/{task_id}_{n}.mp3" for n in range(4)]
    inputs = [f"{T}/in/{task_id}_origin.mp3", f"{T}/stream/{task_id}", f"{T}/in/{task_id}_cover.png"]
    return [
        ({"vocal_removal_info": {"vocal_url": out[0], "instrumental_url": out[1], "origin_url": inputs[0]}},
         out[:2], inputs[:1]),
        ({"stems": [{"name": "Lead Vocal", "file": {"href": out[2]}}, {"name": "FX", "file": {"href": out[3]}}],
          "streamAudioUrl": inputs[1]}, out[2:], inputs[1:2]),
        ({"outputs": [[{"kind": "audio", "location": out[0]}]], "sourceImageUrl": inputs[2]}, out[:1], inputs[2:]),
    ]  # fmt: skip


@pytest.mark.parametrize("shape", [0, 1, 2], ids=["nested-info", "list-of-objects", "nested-lists"])
def test_market_result_of_unknown_shape_is_archived_by_the_net(
    inline_mode: Stack, task_id: str, shape: int
) -> None:
    result, expected, inputs = _shapes(task_id)[shape]
    param_url = f"{T}/in/{task_id}_param.mp3"
    served = serve_result_files(inline_mode.emulator, [*expected, *inputs, param_url], size=3000)
    status, doc = post_callback(_net_body(task_id, result, param_url), task_id)
    assert status == 200, doc
    assert doc["state"] == "copied"
    assert [f["source"] for f in doc["files"]] == expected
    stored = archived_files(inline_mode, task_id)
    for file in doc["files"]:
        assert file["sha256"] == served[file["source"]].sha256_hex()
        assert stored[file["key"]] == 3000
        assert file["key"].startswith(f"kie/{task_id}/")
    for url in [*inputs, param_url]:  # never asked for, never fetched
        assert inline_mode.emulator.download_url_calls[url] == 0
        assert inline_mode.emulator.file_requests[served[url].name] == 0
    items = get_services().ledger.get(task_id)
    assert items is not None
    assert {f.found_by for f in items[1]} == {"net"}


def test_net_never_takes_inputs_or_the_callback_url_for_results(inline_mode: Stack, task_id: str) -> None:
    # Issue 21 (6): a Market resultJson of unknown shape that echoes the request: its input images
    # and its callBackUrl (with the callback token) live on hosts the source policy allows.
    out = [f"{T}/s/{task_id}_0.png", f"{T}/s/{task_id}_1.png"]
    inputs = [f"{T}/in/{task_id}_{name}.png" for name in ("input", "urls", "snake", "mask", "inputs")]
    callback = f"{T}/callbacks/kie?token=s3cret-{task_id}"
    result = {
        "outputs": [{"href": out[0]}, {"href": out[1]}],
        "input_image": inputs[0],
        "imageUrls": [inputs[1]],
        "request": {"image_urls": [inputs[2]], "mask_input": {"url": inputs[3]}, "inputs": [inputs[4]]},
        "callBackUrl": callback,
    }
    served = serve_result_files(inline_mode.emulator, [*out, *inputs, callback], size=1024)
    status, doc = post_callback(_net_body(task_id, result, f"{T}/in/p.mp3"), task_id)
    assert (status, doc["state"]) == (200, "copied")
    assert [f["source"] for f in doc["files"]] == out
    for url in [*inputs, callback]:  # never asked for, never fetched: the token never leaves
        assert inline_mode.emulator.download_url_calls[url] == 0
        assert inline_mode.emulator.file_requests[served[url].name] == 0


def test_net_skips_urls_the_source_policy_refuses(
    inline_mode: Stack, task_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    good = f"{T}/s/{task_id}.mp3"
    served = serve_result_files(inline_mode.emulator, [good], size=2048)
    result = {"tracks": [{"u": good}, {"u": "https://evil.example/x.mp3"}, {"u": "https://10.0.0.1/y.mp3"}]}
    with printed(capsys) as documents:
        status, doc = post_callback(_net_body(task_id, result, f"{T}/in/p.mp3"), task_id)
    assert (status, doc["state"]) == (200, "copied")
    assert [f["source"] for f in doc["files"]] == [good]
    assert doc["files"][0]["sha256"] == served[good].sha256_hex()
    # The drop is a warning, counted, so that an alarm or a dashboard can see the net lose URLs.
    [dropped] = [
        d for d in documents if d.get("message") == "safety net skipped URLs the source policy refuses"
    ]
    assert (dropped["level"], dropped["skipped"]) == ("WARNING", 2)
    assert counted(documents, "SafetyNetUrlsRefused") == 2


@pytest.mark.parametrize(
    "result",
    [{"midi": {"notes": 812}}, {"only": "https://evil.example/x.mp3"}],
    ids=["no-url", "refused-url"],
)
def test_market_result_without_a_usable_url_is_unrecognised_never_copied(
    queue_mode: Stack, task_id: str, result: dict[str, Any]
) -> None:
    status, doc = post_callback(_net_body(task_id, result, f"{T}/in/p.mp3"), task_id)
    assert status == 200
    assert (doc["state"], doc["files"]) == ("ignored", [])
    assert "replay" in doc["reason"]
    assert objects_under(queue_mode, f"kie/{task_id}/callbacks/")  # the raw body is kept


def test_unrecognised_callback_is_archived_by_the_reconciler_once_its_parser_exists(
    inline_mode: Stack, task_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = [f"{T}/l/{task_id}.mp4"]
    served = serve_result_files(inline_mode.emulator, urls, size=4096)
    body = {"code": 200, "msg": "ok", "data": {"taskId": task_id, "promptJson": json.dumps({"videoUrl": f"{T}/in/v.mp4"}), "resultUrls": urls}}  # fmt: skip
    with monkeypatch.context() as without_luma:
        without_luma.setattr(
            receive, "PARSERS", tuple(p for p in PARSERS if p.name not in ("luma", "midjourney"))
        )
        status, doc = post_callback(body, task_id, query={"family": "luma"})
        assert (status, doc["state"], doc["files"]) == (200, "ignored", [])
        assert reconcile(get_services(), now=datetime.now(UTC) + timedelta(minutes=6)).replayed == []
    report = reconcile(get_services(), now=datetime.now(UTC) + timedelta(minutes=12))
    assert report.replayed == [task_id]
    doc = task_document(task_id)
    assert (doc["family"], doc["state"]) == ("luma", "copied")
    assert doc["files"][0]["sha256"] == served[urls[0]].sha256_hex()
    assert inline_mode.emulator.file_requests[served[urls[0]].name] == 1
    again = reconcile(get_services(), now=datetime.now(UTC) + timedelta(minutes=18))
    assert task_id not in again.replayed  # no longer open: replayed once
    assert inline_mode.emulator.file_requests[served[urls[0]].name] == 1


def test_replay_of_an_sse_kms_callback_body_archives_it_as_deployed(
    queue_mode: Stack, task_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = queue_mode.client("kms").create_key(Description="kie2s3 archive key")["KeyMetadata"]["Arn"]
    urls = [f"{T}/l/{task_id}.mp4"]
    served = serve_result_files(queue_mode.emulator, urls, size=2048)
    body = {"code": 200, "msg": "ok", "data": {"taskId": task_id, "promptJson": json.dumps({"videoUrl": f"{T}/in/v.mp4"}), "resultUrls": urls}}  # fmt: skip
    with function_environment({"KMS_KEY_ARN": key}):  # the stack deployed with KmsKeyArn
        with monkeypatch.context() as without_luma:
            without_luma.setattr(
                receive, "PARSERS", tuple(p for p in PARSERS if p.name not in ("luma", "midjourney"))
            )
            assert post_callback(body, task_id, query={"family": "luma"})[0] == 200
        [raw] = objects_under(queue_mode, f"kie/{task_id}/callbacks/")
        head = queue_mode.client("s3").head_object(Bucket=queue_mode.bucket, Key=raw)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key)
        report = reconcile(get_services(), now=datetime.now(UTC) + timedelta(minutes=12))
        assert report.replayed == [task_id]
        queue_mode.poller().drain()
    doc = task_document(task_id)
    assert (doc["family"], doc["state"]) == ("luma", "copied")
    assert doc["files"][0]["sha256"] == served[urls[0]].sha256_hex()


def test_replay_uses_a_body_only_under_the_task_id_it_names(inline_mode: Stack, task_id: str) -> None:
    urls = [f"{T}/l/{task_id}.mp4"]
    serve_result_files(inline_mode.emulator, urls, size=1024)
    status, doc = post_callback({"code": 200, "data": {"taskId": task_id, "mystery": {"a": 1}}}, task_id)
    assert (status, doc["state"]) == (200, "ignored")
    # Another task's body that the parsers know, planted (newest) under this task's prefix.
    other = {"code": 200, "data": {"taskId": f"x{task_id[1:]}", "resultUrls": urls}}
    get_services().store.put_raw(
        f"kie/{task_id}/callbacks/9999999999999-planted.json", json.dumps(other).encode()
    )
    report = reconcile(get_services(), now=datetime.now(UTC) + timedelta(minutes=6))
    assert task_id in report.still_unrecognised
    assert task_id not in report.replayed
    doc = task_document(task_id)
    assert (doc["state"], doc["files"]) == ("ignored", [])
    assert archived_files(inline_mode, task_id) == {}
