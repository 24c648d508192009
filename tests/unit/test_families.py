import json
from pathlib import Path
from typing import Any

import pytest

from kie2s3.families import PARSERS, detect, find_task_id
from kie2s3.models import Outcome

EVENTS = Path(__file__).resolve().parents[2] / "events"
CALLBACK_EVENTS = sorted(EVENTS.glob("callback-*.json"))


def _body(name: str) -> dict[str, Any]:
    return json.loads(json.loads((EVENTS / name).read_text())["body"])


@pytest.mark.parametrize("path", CALLBACK_EVENTS, ids=lambda p: p.stem)
def test_every_callback_sample_parses(path: Path) -> None:
    body = json.loads(json.loads(path.read_text())["body"])
    parser = detect(body, PARSERS)
    assert parser is not None, f"{path.name} matches no family"
    parsed = parser.parse(body)
    assert parsed.task_id == find_task_id(body)
    assert parsed.outcome in (Outcome.SUCCESS, Outcome.FAILED, Outcome.NOT_FINAL)


def test_every_event_file_is_valid_json() -> None:
    files = sorted(EVENTS.glob("*.json"))
    assert files
    for path in files:
        event = json.loads(path.read_text())
        assert "Records" in event or event.get("version") == "2.0", path.name


def test_market_success_lists_result_urls_in_order() -> None:
    parsed = PARSERS[0].parse(_body("callback-market-success.json"))
    assert parsed.family == "market"
    assert parsed.outcome is Outcome.SUCCESS
    assert [(f.url.rsplit("/", 1)[1], f.kind) for f in parsed.files] == [
        ("7c1e0f3ab2d94c55a1e6f0b9d2c4a871_0_1790001234_5521.png", "image"),
        ("7c1e0f3ab2d94c55a1e6f0b9d2c4a871_1_1790001234_5522.mp4", "video"),
    ]


def test_market_failure_records_reason_and_no_files() -> None:
    parsed = PARSERS[0].parse(_body("callback-market-failure.json"))
    assert parsed.outcome is Outcome.FAILED
    assert parsed.files == ()
    assert parsed.reason == "Internal server error (failCode 500)"


def test_market_suno_tracks_in_result_json() -> None:
    body = {
        "code": 200,
        "data": {
            "taskId": "abc123",
            "state": "success",
            "resultJson": json.dumps(
                {"data": [{"audio_url": "https://h/a.mp3", "image_url": "https://h/a.jpeg"}]}
            ),
        },
    }
    parsed = PARSERS[0].parse(body)
    assert [f.kind for f in parsed.files] == ["audio", "image"]


def test_market_success_state_with_error_code_is_failure() -> None:
    body = {"code": 500, "msg": "boom", "data": {"taskId": "abc123", "state": "success", "resultJson": None}}
    assert PARSERS[0].parse(body).outcome is Outcome.FAILED


def test_market_result_json_that_is_not_json_raises() -> None:
    body = {"code": 200, "data": {"taskId": "abc123", "state": "success", "resultJson": "{not json"}}
    with pytest.raises(ValueError):
        PARSERS[0].parse(body)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"data": {"taskId": "a1"}}, "a1"),
        ({"data": {"task_id": "b2"}}, "b2"),
        ({"taskId": "c3", "data": {"result_video_url": "x"}}, "c3"),
        ({"data": {"taskId": "  "}}, None),
        ({"data": None}, None),
        ({}, None),
    ],
)
def test_find_task_id_variants(body: dict[str, Any], expected: str | None) -> None:
    assert find_task_id(body) == expected


def test_detect_unknown_shape_is_none() -> None:
    assert detect({"data": {"taskId": "x", "something": 1}}, PARSERS) is None
