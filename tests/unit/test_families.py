import json
from pathlib import Path
from typing import Any

import pytest
from devstack.expected_files import EXPECTED, RECORDS, Expected
from devstack.kie_emulator import RECORD_INFO_PATHS

from kie2s3.errors import BadRequestError
from kie2s3.families import PARSERS, detect, parser_for, task_id_of
from kie2s3.families.base import FamilyParser
from kie2s3.models import Outcome

EVENTS = Path(__file__).resolve().parents[2] / "events"
CALLBACK_EVENTS = sorted(EVENTS.glob("callback-*.json"))
# A body no family knows, kept to show it is archived and recorded `unrecognised`.
UNRECOGNISED_SAMPLES = frozenset({"callback-unrecognised.json", "callback-market-no-url.json"})


def _body(name: str) -> dict[str, Any]:
    return json.loads(json.loads((EVENTS / name).read_text())["body"])


@pytest.mark.parametrize(
    "path", [p for p in CALLBACK_EVENTS if p.name not in UNRECOGNISED_SAMPLES], ids=lambda p: p.stem
)
def test_every_callback_sample_parses(path: Path) -> None:
    body = json.loads(json.loads(path.read_text())["body"])
    parser = detect(body, PARSERS)
    assert parser is not None, f"{path.name} matches no family"
    parsed = parser.parse(body)
    assert parsed.task_id == task_id_of(body)
    assert parsed.outcome in (Outcome.SUCCESS, Outcome.NO_FILES, Outcome.FAILED, Outcome.NOT_FINAL)


def test_every_event_file_is_valid_json() -> None:
    files = sorted(EVENTS.glob("*.json"))
    assert files
    for path in files:
        event = json.loads(path.read_text())
        # SQS records, HTTP API 2.0 requests, or the scheduler's constant input (`{"kie2s3": …}`).
        assert "Records" in event or event.get("version") == "2.0" or "kie2s3" in event, path.name


def test_market_success_lists_result_urls_in_order() -> None:
    parsed = _parser("market").parse(_body("callback-market-success.json"))
    assert parsed.family == "market"
    assert parsed.outcome is Outcome.SUCCESS
    assert [(f.url.rsplit("/", 1)[1], f.kind) for f in parsed.files] == [
        ("7c1e0f3ab2d94c55a1e6f0b9d2c4a871_0_1790001234_5521.png", "image"),
        ("7c1e0f3ab2d94c55a1e6f0b9d2c4a871_1_1790001234_5522.mp4", "video"),
    ]


def test_market_model_is_data_model_in_callbacks_and_record_info() -> None:
    market = _parser("market")
    assert market.parse(_body("callback-market-success.json")).model == "nano-banana-pro"
    record = {
        "state": "success",
        "model": " kling-3.0/video ",
        "resultJson": '{"resultUrls": ["https://h/v.mp4"]}',
    }
    assert market.parse_record("abc123", record).model == "kling-3.0/video"


@pytest.mark.parametrize("model", [None, "", "  ", 42, ["x"], {"name": "x"}])
def test_market_model_that_is_no_name_is_none_never_a_parse_failure(model: object) -> None:
    record = {"state": "success", "model": model, "resultJson": '{"resultUrls": ["https://h/v.mp4"]}'}
    parsed = _parser("market").parse_record("abc123", record)
    assert (parsed.outcome, parsed.model) == (Outcome.SUCCESS, None)


def test_market_failure_records_reason_and_no_files() -> None:
    parsed = _parser("market").parse(_body("callback-market-failure.json"))
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
    parsed = _parser("market").parse(body)
    assert [f.kind for f in parsed.files] == ["audio", "image"]


def test_market_success_state_with_error_code_is_failure() -> None:
    body = {"code": 500, "msg": "boom", "data": {"taskId": "abc123", "state": "success", "resultJson": None}}
    assert _parser("market").parse(body).outcome is Outcome.FAILED


def test_market_result_json_that_is_not_json_raises() -> None:
    body = {"code": 200, "data": {"taskId": "abc123", "state": "success", "resultJson": "{not json"}}
    with pytest.raises(ValueError):
        _parser("market").parse(body)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"data": {"taskId": "a1"}}, "a1"),
        ({"data": {"task_id": "b2"}}, "b2"),
        ({"taskId": "c3", "data": {"result_video_url": "x"}}, "c3"),
        ({"task_id": "d4", "data": {"instruments": []}}, "d4"),
        ({"data": {"taskId": "e5", "task_id": "e5"}}, "e5"),
        ({"data": {"taskId": None, "task_id": "f6"}}, "f6"),
    ],
)
def test_task_id_of_variants(body: dict[str, Any], expected: str) -> None:
    assert task_id_of(body) == expected


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"data": {"taskId": "  "}}, "not a task id"),
        ({"data": {"taskId": ""}}, "not a task id"),
        ({"data": {"taskId": " ", "task_id": "A"}}, "not a task id"),
        ({"data": {"taskId": "A", "task_id": "B"}}, "more than one"),
        ({"taskId": "A", "data": {"taskId": "B"}}, "more than one"),
        ({"data": {"taskId": 7}}, "not a task id"),
        ({"data": {"taskId": "a/b"}}, "not a task id"),
        ({"data": None}, "no task id"),
        ({}, "no task id"),
    ],
)
def test_task_id_of_refuses_blank_malformed_or_two(body: dict[str, Any], reason: str) -> None:
    with pytest.raises(BadRequestError, match=reason):
        task_id_of(body)


def test_detect_unknown_shape_is_none() -> None:
    assert detect({"data": {"taskId": "x", "something": 1}}, PARSERS) is None


# --- every family, against the hand-written expectations of devstack/expected_files.py ---------------

FAMILIES = (
    "market",
    "veo",
    "veo4k",
    "suno",
    "suno_wav",
    "suno_mp4",
    "suno_midi",
    "suno_voice",
    "unknown",
    "suno_vocal_separation",
    "suno_cover",
    "gpt4o",
    "flux_kontext",
    "runway",
    "runway_aleph",
    "luma",
    "midjourney",
)


def _parser(name: str) -> FamilyParser:
    parser = parser_for(name, PARSERS)
    assert parser is not None, name
    return parser


def _hint(name: str) -> str | None:
    query = json.loads((EVENTS / name).read_text()).get("queryStringParameters") or {}
    hint = query.get("family")
    return str(hint) if hint else None


def _urls(body: dict[str, Any], family: str) -> list[str]:
    return [f.url for f in _parser(family).parse(body).files]


def test_registry_has_every_family_once() -> None:
    assert sorted(p.name for p in PARSERS) == sorted(FAMILIES)


def test_expected_files_cover_every_callback_sample() -> None:
    assert sorted(EXPECTED) == [p.name for p in CALLBACK_EVENTS]


def test_expected_files_cover_every_family_and_outcome() -> None:
    assert {e.family for e in EXPECTED.values()} == set(FAMILIES)
    assert {e.outcome for e in EXPECTED.values()} == {o.value for o in Outcome}


@pytest.mark.parametrize(("name", "expected"), EXPECTED.items(), ids=list(EXPECTED))
def test_sample_hint_is_the_one_expected(name: str, expected: Expected) -> None:
    assert _hint(name) == expected.hint


@pytest.mark.parametrize(("name", "expected"), EXPECTED.items(), ids=list(EXPECTED))
def test_sample_detects_as_expected_family(name: str, expected: Expected) -> None:
    parser = detect(_body(name), PARSERS, expected.hint)
    assert (parser.name if parser else "unknown") == expected.family


@pytest.mark.parametrize(("name", "expected"), EXPECTED.items(), ids=list(EXPECTED))
def test_sample_parses_to_expected_outcome_and_files(name: str, expected: Expected) -> None:
    body = _body(name)
    parser = detect(body, PARSERS, expected.hint)
    if parser is None:
        assert expected.outcome == Outcome.UNRECOGNISED
        return
    parsed = parser.parse(body)
    assert parsed.family == expected.family
    assert parsed.outcome == expected.outcome
    assert [f.url for f in parsed.files] == [url for url, _ in expected.files]
    assert parsed.task_id == task_id_of(body)


@pytest.mark.parametrize(("name", "expected"), EXPECTED.items(), ids=list(EXPECTED))
def test_sample_file_kinds_agree_with_expected_content_types(name: str, expected: Expected) -> None:
    parser = detect(_body(name), PARSERS, expected.hint)
    files = parser.parse(_body(name)).files if parser else ()
    assert [f.kind for f in files] == [ctype.split("/")[0] for _, ctype in expected.files]


@pytest.mark.parametrize(
    "name", [n for n, e in EXPECTED.items() if e.outcome == Outcome.FAILED and e.family != "market"]
)
def test_sample_failure_reason_is_the_message(name: str) -> None:
    body = _body(name)
    parser = detect(body, PARSERS, EXPECTED[name].hint)
    assert parser is not None
    assert parser.parse(body).reason == body["msg"]


@pytest.mark.parametrize(
    "name", [n for n, e in EXPECTED.items() if e.hint is not None], ids=lambda n: n.removesuffix(".json")
)
def test_hinted_sample_without_its_hint_is_another_family(name: str) -> None:
    parser = detect(_body(name), PARSERS)
    assert parser is not None
    assert parser.name != EXPECTED[name].family  # hence the hint


@pytest.mark.parametrize(("name", "expected"), EXPECTED.items(), ids=list(EXPECTED))
def test_sample_market_matches_only_market_bodies(name: str, expected: Expected) -> None:
    assert _parser("market").matches(_body(name)) is (expected.family == "market")


@pytest.mark.parametrize("name", [n for n, e in EXPECTED.items() if e.family == "market"])
def test_sample_market_body_matches_no_other_family(name: str) -> None:
    assert [p.name for p in PARSERS if p.matches(_body(name))] == ["market"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [(n, e) for n, e in EXPECTED.items() if e.family not in ("market", "unknown")],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_sample_own_hint_keeps_its_family(name: str, expected: Expected) -> None:
    parser = detect(_body(name), PARSERS, expected.family)
    assert parser is not None
    assert parser.name == expected.family


# --- callback details ------------------------------------------------------------------------------


def _veo(result_urls: object, origin_urls: object = None) -> dict[str, Any]:
    info = {"resultUrls": result_urls, "originUrls": origin_urls}
    return {"code": 200, "msg": "ok", "data": {"taskId": "v1", "info": info, "fallbackFlag": False}}


@pytest.mark.parametrize(
    "result_urls",
    [
        ["https://h/a.mp4", "https://h/b.mp4"],
        '["https://h/a.mp4", "https://h/b.mp4"]',
        "[https://h/a.mp4, https://h/b.mp4]",  # the generate page's OpenAPI example: no quotes
    ],
    ids=["array", "json-string", "bracketed-unquoted"],
)
def test_veo_result_urls_array_or_json_string(result_urls: object) -> None:
    assert _urls(_veo(result_urls), "veo") == ["https://h/a.mp4", "https://h/b.mp4"]


def test_veo_single_url_string_is_one_file() -> None:
    assert _urls(_veo("https://h/a.mp4"), "veo") == ["https://h/a.mp4"]


def test_veo_origin_urls_follow_result_urls() -> None:
    body = _veo('["https://h/a.mp4"]', ["https://h/a_origin.mp4"])
    assert _urls(body, "veo") == ["https://h/a.mp4", "https://h/a_origin.mp4"]


def test_veo_result_urls_json_object_is_rejected() -> None:
    with pytest.raises(ValueError):
        _parser("veo").parse(_veo('{"url": "https://h/a.mp4"}'))


def test_veo_empty_and_blank_urls_are_ignored() -> None:
    body = _veo(["", "  ", "https://h/a.mp4", None], "")
    assert _urls(body, "veo") == ["https://h/a.mp4"]


def test_veo_duplicate_urls_are_kept_once_in_order() -> None:
    body = _veo(["https://h/b.mp4", "https://h/a.mp4", "https://h/b.mp4"], ["https://h/a.mp4"])
    assert _urls(body, "veo") == ["https://h/b.mp4", "https://h/a.mp4"]


def test_veo_success_without_files_is_unrecognised_never_success() -> None:
    parsed = _parser("veo").parse(_veo([]))
    assert parsed.outcome is Outcome.UNRECOGNISED
    assert parsed.files == ()


def test_veo_non_200_code_is_failure_even_with_urls() -> None:
    body = {**_veo(["https://h/a.mp4"]), "code": 500, "msg": "Internal Error"}
    parsed = _parser("veo").parse(body)
    assert (parsed.outcome, parsed.reason, parsed.files) == (Outcome.FAILED, "Internal Error", ())


def test_veo_failure_without_message_names_the_code() -> None:
    body = {"code": 422, "data": {"taskId": "v1", "fallbackFlag": True}}
    assert _parser("veo").parse(body).reason == "code 422"


def test_veo4k_without_thumbnails_is_veo_unless_hinted() -> None:
    body = _veo(["https://h/4k.mp4"])
    assert detect(body, PARSERS) is _parser("veo")
    assert detect(body, PARSERS, "veo4k") is _parser("veo4k")


def test_veo_hint_does_not_take_a_4k_body() -> None:
    body = _body("callback-veo4k-success.json")
    assert detect(body, PARSERS, "veo") is _parser("veo4k")


@pytest.mark.parametrize("family", ["veo", "veo4k", "flux_kontext", "gpt4o"])
def test_bare_failure_detects_with_its_hint(family: str) -> None:
    body = {"code": 500, "msg": "The 4K version of this video is unavailable.", "data": {"taskId": "t1"}}
    parser = detect(body, PARSERS, family)
    assert parser is not None
    assert parser.name == family
    assert parser.parse(body).outcome is Outcome.FAILED


def test_bare_failure_without_hint_is_unknown_and_with_a_hint_its_family() -> None:
    body = {"code": 400, "msg": "flagged", "data": {"taskId": "t1", "info": None}}
    assert detect(body, PARSERS) is _parser("unknown")
    assert detect(body, PARSERS, "gpt4o") is _parser("gpt4o")


def test_bare_success_matches_no_family() -> None:
    assert detect({"code": 200, "msg": "success", "data": {"taskId": "t1"}}, PARSERS) is None


def test_suno_complete_never_archives_stream_or_source_urls() -> None:
    body = _body("callback-suno-complete.json")
    track_urls = [v for t in body["data"]["data"] for k, v in t.items() if k.endswith("_url")]
    urls = _urls(body, "suno")
    assert any("/stream/" in u for u in track_urls)
    assert any("source_" in u for u in track_urls)
    assert not [u for u in urls if "/stream/" in u or "source_" in u]


def test_suno_track_with_only_a_stream_url_yields_nothing() -> None:
    track = {"id": "a", "audio_url": "", "stream_audio_url": "https://h/stream/a", "image_url": None}
    body = {"code": 200, "msg": "ok", "data": {"callbackType": "complete", "task_id": "s1", "data": [track]}}
    parsed = _parser("suno").parse(body)
    assert (parsed.outcome, parsed.files) == (Outcome.UNRECOGNISED, ())


def test_suno_suffixless_urls_take_the_field_kind() -> None:
    track = {"audio_url": "https://h/audio/a", "image_url": "https://h/cover/a"}
    body = {"code": 200, "msg": "ok", "data": {"callbackType": "complete", "task_id": "s1", "data": [track]}}
    assert [f.kind for f in _parser("suno").parse(body).files] == ["audio", "image"]


@pytest.mark.parametrize("stage", ["text", "first"])
def test_suno_intermediate_stage_is_not_final_with_the_stage_as_reason(stage: str) -> None:
    track = {"audio_url": "https://h/a.mp3", "image_url": "https://h/a.jpeg"}
    body = {"code": 200, "msg": "ok", "data": {"callbackType": stage, "task_id": "s1", "data": [track]}}
    parsed = _parser("suno").parse(body)
    assert (parsed.outcome, parsed.reason, parsed.files) == (
        Outcome.NOT_FINAL,
        f"waiting for the complete stage ({stage})",
        (),
    )


def test_suno_non_200_code_on_complete_is_failure() -> None:
    body = {
        "code": 501,
        "msg": "Audio generation failed",
        "data": {"callbackType": "complete", "task_id": "s1"},
    }
    parsed = _parser("suno").parse(body)
    assert (parsed.outcome, parsed.reason) == (Outcome.FAILED, "Audio generation failed")


def test_suno_unknown_callback_type_raises() -> None:
    body = {"code": 200, "msg": "ok", "data": {"callbackType": "partial", "task_id": "s1", "data": []}}
    with pytest.raises(ValueError):
        _parser("suno").parse(body)


def test_suno_wav_accepts_either_field_name() -> None:
    for field in ("audioWavUrl", "audio_wav_url"):
        body = {"code": 200, "msg": "success", "data": {field: "https://h/a.wav", "task_id": "w1"}}
        assert detect(body, PARSERS) is _parser("suno_wav")
        assert _urls(body, "suno_wav") == ["https://h/a.wav"]


def test_suno_mp4_success_with_null_video_is_unrecognised() -> None:
    body = {"code": 200, "msg": "ok", "data": {"task_id": "m1", "video_url": None}}
    parsed = _parser("suno_mp4").parse(body)
    assert (parsed.outcome, parsed.files) == (Outcome.UNRECOGNISED, ())


# Suno vocal separation: `separate_vocal`, `split_stem`, `split_stem_advanced`, either container key.

SEPARATION_KEYS = ("vocal_separation_info", "vocal_removal_info")
ALL_STEMS = (
    "vocal",
    "instrumental",
    "backing_vocals",
    "drums",
    "bass",
    "guitar",
    "piano",
    "keyboard",
    "percussion",
    "strings",
    "synth",
    "fx",
    "brass",
    "woodwinds",
)


def _separation(info: object, key: str = "vocal_separation_info", code: int = 200) -> dict[str, Any]:
    return {
        "code": code,
        "msg": "vocal separation generated successfully.",
        "data": {"task_id": "sv1", key: info},
    }


@pytest.mark.parametrize("key", SEPARATION_KEYS)
def test_suno_vocal_separation_separate_vocal_under_either_key(key: str) -> None:
    info = {"instrumental_url": "https://h/i.mp3", "origin_url": "", "vocal_url": "https://h/v.mp3"}
    body = _separation(info, key)
    assert detect(body, PARSERS) is _parser("suno_vocal_separation")
    parsed = _parser("suno_vocal_separation").parse(body)
    assert (parsed.task_id, parsed.outcome) == ("sv1", Outcome.SUCCESS)
    assert [(f.url, f.kind) for f in parsed.files] == [
        ("https://h/v.mp3", "audio"),
        ("https://h/i.mp3", "audio"),
    ]


@pytest.mark.parametrize("key", SEPARATION_KEYS)
def test_suno_vocal_separation_split_stem_every_stem_in_record_info_order(key: str) -> None:
    info = {"origin_url": "", **{f"{stem}_url": f"https://h/{stem}" for stem in reversed(ALL_STEMS)}}
    parsed = _parser("suno_vocal_separation").parse(_separation(info, key))
    assert [(f.url, f.kind) for f in parsed.files] == [(f"https://h/{stem}", "audio") for stem in ALL_STEMS]


def test_suno_vocal_separation_split_stem_absent_empty_or_null_stems_are_skipped() -> None:
    info = {
        "origin_url": "",
        "vocal_url": "https://h/v.mp3",
        "backing_vocals_url": "https://h/bv.mp3",
        "drums_url": "",
        "bass_url": None,
        "guitar_url": "  ",
    }
    assert _urls(_separation(info), "suno_vocal_separation") == ["https://h/v.mp3", "https://h/bv.mp3"]


@pytest.mark.parametrize("key", SEPARATION_KEYS)
def test_suno_vocal_separation_never_archives_origin_url(key: str) -> None:
    info = {
        "origin_url": "https://h/song.mp3",
        "vocal_url": "https://h/v.mp3",
        "instrumental_url": "https://h/i.mp3",
    }
    urls = _urls(_separation(info, key), "suno_vocal_separation")
    assert "https://h/song.mp3" not in urls
    assert urls == ["https://h/v.mp3", "https://h/i.mp3"]


@pytest.mark.parametrize("key", SEPARATION_KEYS)
def test_suno_vocal_separation_split_stem_advanced_extract_then_remove(key: str) -> None:
    def pair(name: str) -> dict[str, Any]:
        return {
            "extract": {
                "duration": 194.9,
                "audio_url": f"https://h/x_{name}.mp3",
                "stem_type_group_name": name,
            },
            "remove": {
                "duration": 194.9,
                "audio_url": f"https://h/r_{name}.mp3",
                "stem_type_group_name": name,
            },
        }

    body = _separation({"origin_data": [pair("Lead Vocal"), pair("Drums")]}, key)
    assert detect(body, PARSERS) is _parser("suno_vocal_separation")
    assert _urls(body, "suno_vocal_separation") == [
        "https://h/x_Lead Vocal.mp3",  # the space is kept: the URL is given to download-url as kie.ai wrote it
        "https://h/r_Lead Vocal.mp3",
        "https://h/x_Drums.mp3",
        "https://h/r_Drums.mp3",
    ]


def test_suno_vocal_separation_origin_data_is_read_only_when_no_stem_is_named() -> None:
    # record-info's originData repeats the named stems from upstream (same ids): not a second copy.
    info = {
        "vocal_url": "https://h/v.mp3",
        "origin_data": [{"audio_url": "https://up/v.mp3", "extract": {"audio_url": "https://up/x.mp3"}}],
    }
    assert _urls(_separation(info), "suno_vocal_separation") == ["https://h/v.mp3"]


@pytest.mark.parametrize("key", SEPARATION_KEYS)
def test_suno_vocal_separation_failure_with_null_info_is_failed(key: str) -> None:
    body = {"code": 500, "msg": "Vocal separation failed", "data": {"task_id": "sv1", key: None}}
    assert detect(body, PARSERS) is _parser("suno_vocal_separation")
    parsed = _parser("suno_vocal_separation").parse(body)
    assert (parsed.outcome, parsed.reason, parsed.files) == (Outcome.FAILED, "Vocal separation failed", ())


def test_suno_vocal_separation_non_200_code_is_failure_even_with_urls() -> None:
    body = _separation({"vocal_url": "https://h/v.mp3"}, code=531)
    parsed = _parser("suno_vocal_separation").parse(body)
    assert (parsed.outcome, parsed.files) == (Outcome.FAILED, ())


def test_suno_vocal_separation_code_200_with_null_info_is_failed() -> None:
    parsed = _parser("suno_vocal_separation").parse(_separation(None))
    assert parsed.outcome is Outcome.FAILED
    assert parsed.reason == "vocal separation result is null"


def test_suno_vocal_separation_is_not_taken_by_other_suno_families() -> None:
    body = _body("callback-suno-vocals-separate-vocal.json")
    assert [p.name for p in PARSERS if p.matches(body)] == ["suno_vocal_separation"]


# Suno cover image: camelCase `data.taskId`, `data.images[]`; failure `images: null`.


def _cover(images: object, code: int = 200) -> dict[str, Any]:
    return {
        "code": code,
        "msg": "success" if code == 200 else "Cover generation failed",
        "data": {"taskId": "c1", "images": images},
    }


def test_suno_cover_images_are_archived_in_order() -> None:
    body = _cover(["https://h/c0.png", "https://h/c1"])
    assert detect(body, PARSERS) is _parser("suno_cover")
    parsed = _parser("suno_cover").parse(body)
    assert (parsed.task_id, parsed.outcome) == ("c1", Outcome.SUCCESS)
    assert [(f.url, f.kind) for f in parsed.files] == [
        ("https://h/c0.png", "image"),
        ("https://h/c1", "image"),
    ]


def test_suno_cover_failure_with_null_images_is_suno_cover_not_a_bare_failure() -> None:
    body = _cover(None, code=501)
    assert detect(body, PARSERS) is _parser("suno_cover")
    parsed = _parser("suno_cover").parse(body)
    assert (parsed.outcome, parsed.reason, parsed.files) == (Outcome.FAILED, "Cover generation failed", ())


def test_suno_cover_does_not_take_a_bare_failure_without_images() -> None:
    body = {"code": 501, "msg": "Cover generation failed", "data": {"taskId": "c1"}}
    assert not _parser("suno_cover").matches(body)


def test_suno_cover_code_200_with_null_images_is_failed() -> None:
    parsed = _parser("suno_cover").parse(_cover(None))
    assert (parsed.outcome, parsed.reason) == (Outcome.FAILED, "cover images are null")


def test_suno_cover_non_200_code_is_failure_even_with_images() -> None:
    parsed = _parser("suno_cover").parse(_cover(["https://h/c0.png"], code=400))
    assert (parsed.outcome, parsed.files) == (Outcome.FAILED, ())


def test_runway_body_without_cover_or_id_needs_its_hint() -> None:
    body = {"code": 200, "msg": "ok", "data": {"task_id": "r1", "video_url": "https://h/clip"}}
    assert detect(body, PARSERS) is _parser("suno_mp4")
    assert detect(body, PARSERS, "runway") is _parser("runway")
    assert [f.kind for f in _parser("runway").parse(body).files] == ["video"]


def test_runway_empty_strings_are_absent() -> None:
    body = {
        "code": 200,
        "msg": "ok",
        "data": {"task_id": "r1", "video_id": "x", "video_url": "https://h/v.mp4", "image_url": " "},
    }
    assert _urls(body, "runway") == ["https://h/v.mp4"]


def test_flux_kontext_never_archives_origin_image_url() -> None:
    body = _body("callback-flux-kontext-success.json")
    assert body["data"]["info"]["originImageUrl"] not in _urls(body, "flux_kontext")


def test_flux_kontext_empty_info_with_200_is_unrecognised() -> None:
    body = {
        "code": 200,
        "msg": "ok",
        "data": {"taskId": "f1", "info": {"resultImageUrl": "", "originImageUrl": ""}},
    }
    parsed = _parser("flux_kontext").parse(body)
    assert (parsed.outcome, parsed.files) == (Outcome.UNRECOGNISED, ())


def test_runway_aleph_task_id_is_top_level() -> None:
    body = {"code": 200, "msg": "ok", "taskId": "top-1", "data": {"result_video_url": "https://h/v.mp4"}}
    parser = detect(body, PARSERS)
    assert parser is _parser("runway_aleph")
    assert parser.parse(body).task_id == "top-1"
    assert parser.parse(body).task_id == "top-1"


def test_runway_aleph_error_with_null_data_is_failure() -> None:
    body = _body("callback-runway-aleph-failure.json")
    assert task_id_of(body) == body["taskId"]
    assert _parser("runway_aleph").parse(body).outcome is Outcome.FAILED


def test_runway_aleph_without_task_id_raises() -> None:
    body = {"code": 200, "msg": "ok", "taskId": " ", "data": {"result_video_url": "https://h/v.mp4"}}
    with pytest.raises(BadRequestError, match="not a task id"):
        _parser("runway_aleph").parse(body)


def _prompted(prompt_json: object, result_urls: list[str], code: int = 200) -> dict[str, Any]:
    data = {"taskId": "p1", "promptJson": prompt_json, "resultUrls": result_urls}
    return {"code": code, "msg": "ok", "data": data}


@pytest.mark.parametrize(
    ("prompt_json", "urls", "family"),
    [
        ('{"taskType": "mj_video", "prompt": "x"}', ["https://h/a.mp4"], "midjourney"),
        ('{"videoUrl": "https://in/a.mp4", "prompt": "x"}', ["https://h/a.png"], "luma"),
        ("{not json", ["https://h/a.mp4"], "luma"),
        ("{not json", ["https://h/a.jpeg", "https://h/b.jpeg"], "midjourney"),
        (None, ["https://h/a.webp"], "midjourney"),
        ({"taskType": "mj_txt2img"}, [], "midjourney"),  # an object, as Veo's English page shows it
        ('"just a string"', ["https://h/a.mp4"], "luma"),
    ],
    ids=["mj-video", "luma-video-url", "invalid-video", "invalid-images", "absent-image", "object", "string"],
)
def test_luma_midjourney_told_apart(prompt_json: object, urls: list[str], family: str) -> None:
    body = _prompted(prompt_json, urls)
    parser = detect(body, PARSERS)
    assert parser is not None
    assert parser.name == family
    assert parser.parse(body).outcome is (Outcome.SUCCESS if urls else Outcome.UNRECOGNISED)


@pytest.mark.parametrize("family", ["luma", "midjourney"])
def test_luma_midjourney_undecidable_body_follows_hint(family: str) -> None:
    body = _prompted("{not json", ["https://h/result"])
    assert {p.name for p in PARSERS if p.matches(body)} == {"luma", "midjourney"}
    assert detect(body, PARSERS, family) is _parser(family)


def test_luma_midjourney_hint_does_not_override_a_clear_body() -> None:
    body = _body("callback-midjourney-success.json")
    assert detect(body, PARSERS, "luma") is _parser("midjourney")


def test_midjourney_failure_with_empty_results_is_failure() -> None:
    parsed = _parser("midjourney").parse(_prompted('{"taskType": "mj_txt2img"}', [], code=500))
    assert (parsed.outcome, parsed.reason, parsed.files) == (Outcome.FAILED, "ok", ())


def test_midjourney_suffixless_results_are_images() -> None:
    body = _prompted('{"taskType": "mj_txt2img"}', ["https://h/grid/0"])
    assert [f.kind for f in _parser("midjourney").parse(body).files] == ["image"]


# --- record-info (copy-by-taskId) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "data", "outcome", "urls", "reason"),
    [(f, d, o, u, r) for f, _, d, o, u, r in RECORDS],
    ids=[f"{f}-{s}" for f, s, *_ in RECORDS],
)
def test_parse_record_outcome_files_and_reason(
    family: str, data: dict[str, Any], outcome: Outcome, urls: list[str], reason: str | None
) -> None:
    parsed = _parser(family).parse_record("task-1", data)
    assert (parsed.task_id, parsed.family, parsed.outcome) == ("task-1", family, outcome)
    assert [f.url for f in parsed.files] == urls
    assert parsed.reason == reason


def test_parse_record_covers_every_family_and_outcome() -> None:
    covered = {(f, o) for f, _, _, o, _, _ in RECORDS}
    families = {name for name in FAMILIES if name not in ("market", "unknown")}  # unknown: no record-info

    def final(family: str) -> Outcome:
        return Outcome.NO_FILES if family in ("suno_midi", "suno_voice") else Outcome.SUCCESS

    assert covered == {(f, o) for f in families for o in (final(f), Outcome.FAILED, Outcome.NOT_FINAL)}


@pytest.mark.parametrize(
    ("family", "data"),
    [
        ("veo", {"successFlag": 7}),
        ("veo", {}),
        ("suno", {"status": "HALF_DONE"}),
        ("suno_vocal_separation", {"successFlag": "HALF_DONE"}),
        ("suno_cover", {"successFlag": 7}),
        ("runway", {"state": "paused"}),
        ("midjourney", {"successFlag": 1, "resultInfoJson": "{not json"}),
    ],
    ids=[
        "veo-flag",
        "veo-missing",
        "suno-status",
        "vocals-flag",
        "cover-flag",
        "runway-state",
        "mj-invalid-json",
    ],
)
def test_parse_record_unknown_status_or_shape_raises(family: str, data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _parser(family).parse_record("task-1", data)


def test_parse_record_paths_are_the_emulators() -> None:
    # The emulator's table is written from kie-api.md §5 (veo4k shares Veo's; suno_mp4 and aleph UNCONFIRMED).
    assert {p.name: p.record_info_path for p in PARSERS if p.name != "unknown"} == RECORD_INFO_PATHS
