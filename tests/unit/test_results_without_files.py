"""No final result is ever `copied` without its files: results without files by design, the Market
safety net, honest labels for bare failures (issue #13: items 3 and 5)."""

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.strategies import BODIES

from kie2s3.errors import BadRequestError
from kie2s3.families import PARSERS, detect, parser_for, task_id_of
from kie2s3.families.market import net_urls
from kie2s3.logic.status import task_state
from kie2s3.models import FileItem, Outcome, ParsedCallback, TaskItem

T = "https://tempfile.aiquickdraw.com"


def _market(result: object, param: object = None) -> dict[str, Any]:
    return {
        "code": 200,
        "msg": "Playground task completed successfully.",
        "data": {
            "taskId": "m1",
            "model": "ai-music-api/separate-vocals",
            "state": "success",
            "param": json.dumps(param or {"input": {"audio_url": f"{T}/in/upload.mp3"}}),
            "resultJson": json.dumps(result) if result is not None else None,
        },
    }


def _parse(body: dict[str, Any], hint: str | None = None) -> ParsedCallback:
    parser = detect(body, PARSERS, hint)
    assert parser is not None
    return parser.parse(body)


# -- the invariant, over every parser and generated bodies ----------------------------------------


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(body=BODIES)
def test_no_parser_reports_a_success_without_files(body: dict[str, Any]) -> None:
    for parser in PARSERS:  # each body drawn once, every parser meets it
        try:
            parsed = parser.parse(body)
        except (ValueError, BadRequestError):
            continue
        assert parsed.outcome is not Outcome.SUCCESS or parsed.files, parser.name


def test_a_success_without_files_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="at least one file"):
        ParsedCallback(task_id="t", family="market", outcome=Outcome.SUCCESS)


_STATES = st.sampled_from(["pending", "copying", "copied", "failed"])


@given(
    outcome=st.sampled_from(list(Outcome)), states=st.lists(_STATES, max_size=4), dropped=st.integers(0, 3)
)
def test_a_task_is_copied_only_with_files_every_one_copied(
    outcome: Outcome, states: list[str], dropped: int
) -> None:
    task = TaskItem(
        task_id="t", family="x", outcome=outcome, files_not_planned=dropped, created_at="c", updated_at="u"
    )
    files = [
        FileItem.model_validate(
            {"task_id": "t", "index": n, "source": f"{T}/{n}.png", "kind": "image", "key": f"k{n}", "state": s,
             "updated_at": "u"}
        )
        for n, s in enumerate(states)
    ]  # fmt: skip
    state = task_state(task, files)
    if state == "copied":
        assert outcome is Outcome.SUCCESS
        assert files
        assert all(f.state == "copied" for f in files)
        assert dropped == 0
    if not files:
        assert state != "copied"


# -- results without files by design: ignored, with a reason --------------------------------------


def test_market_text_result_has_no_files() -> None:
    parsed = _parse(_market({"resultObject": {"lyricsData": [{"text": "la la"}]}}))
    assert (parsed.outcome, parsed.reason) == (Outcome.NO_FILES, "result has no files: text result")


def test_suno_lyrics_complete_has_no_files() -> None:
    body = {
        "code": 200,
        "msg": "All generated successfully.",
        "data": {
            "callbackType": "complete",
            "task_id": "l1",
            "data": [{"text": "[Verse] ...", "title": "x"}],
        },
    }
    parsed = _parse(body)
    assert (parsed.family, parsed.outcome, parsed.reason) == (
        "suno",
        Outcome.NO_FILES,
        "result has no files: lyrics",
    )


@pytest.mark.parametrize("stage", ["text", "first"])
def test_suno_stage_reason_says_what_it_waits_for(stage: str) -> None:
    body = {"code": 200, "msg": "ok", "data": {"callbackType": stage, "task_id": "s1", "data": []}}
    parsed = _parse(body)
    assert (parsed.outcome, parsed.reason) == (Outcome.NOT_FINAL, f"waiting for the complete stage ({stage})")


MIDI = {
    "task_id": "5c79be8e",
    "code": 200,
    "msg": "success",
    "data": {
        "state": "complete",
        "instruments": [{"name": "Drums", "notes": [{"pitch": 73, "start": 0.03}]}],
    },
}


@pytest.mark.parametrize(
    "body",
    [MIDI, {**MIDI, "task_id": None, "data": {**MIDI["data"], "taskId": "5c79be8e"}}],
    ids=["documented", "data-taskId"],
)
def test_suno_midi_is_recognised_with_no_files(body: dict[str, Any]) -> None:
    parsed = _parse(body)
    assert (parsed.family, parsed.outcome) == ("suno_midi", Outcome.NO_FILES)
    assert parsed.task_id == "5c79be8e" == task_id_of(body)
    assert parsed.reason == "result has no files: MIDI notes"


def test_suno_midi_failure_is_failed() -> None:
    parsed = _parse({"task_id": "5c79be8e", "code": 500, "msg": "MIDI failed", "data": None})
    assert (parsed.family, parsed.outcome, parsed.reason) == ("suno_midi", Outcome.FAILED, "MIDI failed")


@pytest.mark.parametrize("extra", [{"voiceId": "v_1", "status": "success"}, {"validateInfo": {"ok": True}}])
def test_suno_voice_is_recognised_with_no_files(extra: dict[str, Any]) -> None:
    parsed = _parse({"code": 200, "msg": "success", "data": {"taskId": "v1", **extra}})
    assert (parsed.family, parsed.outcome, parsed.reason) == (
        "suno_voice",
        Outcome.NO_FILES,
        "result has no files: voice task",
    )


# -- the safety net: URLs in a known result part of unknown shape ---------------------------------


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (
            {"vocal_removal_info": {"vocal_url": f"{T}/s/v.mp3", "origin_url": f"{T}/s/in.mp3"}},
            [f"{T}/s/v.mp3"],
        ),
        ({"images": [f"{T}/s/a.png", f"{T}/s/b.png"]}, [f"{T}/s/a.png", f"{T}/s/b.png"]),
        (
            {"stems": [{"name": "Lead Vocal", "file": {"url": f"{T}/r/x_Lead Vocal.mp3"}}],
             "streamAudioUrl": f"{T}/stream/1", "sourceImageUrl": f"{T}/in/cover.png"},
            [f"{T}/r/x_Lead Vocal.mp3"],
        ),
        ({"data": [{"audioUrl": f"{T}/s/t.mp3", "stream_audio_url": f"{T}/st/t"}]}, [f"{T}/s/t.mp3"]),
    ],
    ids=["nested-info", "list", "deep-with-inputs", "camel-tracks"],
)  # fmt: skip
def test_market_net_archives_urls_of_unknown_result_shapes(
    result: dict[str, Any], expected: list[str]
) -> None:
    parsed = _parse(_market(result))
    assert parsed.outcome is Outcome.SUCCESS
    assert [f.url for f in parsed.files] == expected
    net = "camel" not in json.dumps(result) and "audioUrl" not in json.dumps(result)
    assert all(f.found_by == ("net" if net else "parser") for f in parsed.files)


def test_market_net_never_reads_the_request_param() -> None:
    parsed = _parse(_market({"note": "no url here"}, param={"input": {"image_url": f"{T}/in/ref.png"}}))
    assert parsed.outcome is Outcome.UNRECOGNISED
    assert parsed.files == ()


@pytest.mark.parametrize("result", [{}, {"resultUrls": []}, {"data": []}, None, {"text": "done"}])
def test_market_success_without_any_url_is_unrecognised(result: object) -> None:
    parsed = _parse(_market(result))
    assert parsed.outcome is Outcome.UNRECOGNISED
    assert "replay" in (parsed.reason or "")


def test_net_urls_skips_input_and_stream_subtrees() -> None:
    value = {
        "origin": {"deep": [f"{T}/a.png"]},
        "Source_x": f"{T}/b.png",
        "out": [{"u": f"{T}/c.png"}],
        "n": 1,
    }
    assert list(net_urls(value)) == [f"{T}/c.png"]


def _spelled(words: list[str], style: str) -> str:
    """One key in one of the spellings kie.ai's JSON uses (snake, camel, Pascal, kebab, upper snake)."""
    if style == "snake":
        return "_".join(words)
    if style == "kebab":
        return "-".join(words)
    if style == "upper":
        return "_".join(words).upper()
    camel = "".join(w.capitalize() for w in words)
    return camel if style == "pascal" else camel[0].lower() + camel[1:]


_WORDS = st.sampled_from(["image", "images", "url", "urls", "mask", "reference", "video", "audio", "file"])
# Keys naming what the request gave or where to call back (issue 21, item 6): `input*`, `*_input`,
# `imageUrls`, `callBackUrl`, and the stream/source/origin keys of before.
_INPUT_KEYS = st.one_of(
    st.lists(_WORDS, max_size=2).map(lambda w: ["input", *w]),
    st.lists(_WORDS, max_size=2).map(lambda w: ["inputs", *w]),
    st.lists(_WORDS, min_size=1, max_size=2).map(lambda w: [*w, "input"]),
    st.just(["image", "urls"]),
    st.sampled_from([["call", "back", "url"], ["callback", "url"], ["callback"]]),
    st.tuples(st.sampled_from(["stream", "source", "origin"]), _WORDS).map(list),
)
_STYLES = st.sampled_from(["snake", "camel", "pascal", "kebab", "upper"])


@given(words=_INPUT_KEYS, style=_STYLES, depth=st.integers(0, 3), in_list=st.booleans())
def test_net_urls_never_takes_an_input_or_the_callback_url(
    words: list[str], style: str, depth: int, in_list: bool
) -> None:
    key = _spelled(words, style)
    echoed: object = {key: [f"{T}/in/x.png"] if in_list else f"{T}/in/x.png"}
    for level in range(depth):
        echoed = {f"part{level}": echoed} if level % 2 else [echoed]
    result = {"outputs": [{"url": f"{T}/s/out.png"}], "echo": echoed}
    assert list(net_urls(result)) == [f"{T}/s/out.png"], key


@pytest.mark.parametrize(
    "key", ["image_url", "imageUrl", "images", "output", "result_image", "videoUrl", "audio_urls", "url"]
)
def test_net_urls_takes_result_keys(key: str) -> None:
    assert list(net_urls({key: f"{T}/s/out.png"})) == [f"{T}/s/out.png"]


# -- honest labels: a bare failure is `unknown` unless hinted -------------------------------------

BARE = {"code": 500, "msg": "The 4K version of this video is unavailable.", "data": {"taskId": "b1"}}


@pytest.mark.parametrize(("hint", "family"), [(None, "unknown"), ("gpt4o", "gpt4o"), ("veo4k", "veo4k")])
def test_bare_failure_is_unknown_unless_hinted(hint: str | None, family: str) -> None:
    parsed = _parse(BARE, hint)
    assert (parsed.family, parsed.outcome) == (family, Outcome.FAILED)
    assert parsed.reason == BARE["msg"]


def test_unknown_family_has_no_record_info() -> None:
    parser = parser_for("unknown", PARSERS)
    assert parser is not None
    assert parser.record_info_path == ""
