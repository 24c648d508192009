"""KeyTemplate: the placeholders it knows, the errors that name KEY_TEMPLATE, the keys it renders."""

import itertools
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from devstack.template import load_template
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.environment import MINIMAL_ENV

from kie2s3.errors import ConfigurationError
from kie2s3.keys import DEFAULT_KEY_TEMPLATE, KeyTemplate, key_segment
from kie2s3.models import CopyJob
from kie2s3.settings import Settings

BASE = MINIMAL_ENV
CREATED = datetime(2026, 3, 7, 23, 59, 58, tzinfo=UTC)


def render(template: str, **values: Any) -> str:
    arguments: dict[str, Any] = {
        "prefix": "kie/",
        "task_id": "7c1e0f3a",
        "family": "market",
        "model": None,
        "index": 1,
        "url": "https://tempfile.aiquickdraw.com/p/x.mp4",
        "created_at": CREATED,
        **values,
    }
    return KeyTemplate.parse(template).render(**arguments)


def test_key_template_default_keeps_todays_keys() -> None:
    # Today's layout, `<prefix><taskId>/<index, 2 digits><suffix>`, `.bin` when the URL names none.
    assert render(DEFAULT_KEY_TEMPLATE) == "kie/7c1e0f3a/01.mp4"
    assert render(DEFAULT_KEY_TEMPLATE, index=123, url="https://h.example/p/noext") == "kie/7c1e0f3a/123.bin"


def test_key_template_date_and_model_placeholders() -> None:
    template = "{prefix}{yyyy}/{mm}/{dd}/{family}/{model}/{taskId}/{index}{ext}"
    key = render(template, model="bytedance/seedream-v4-text-to-image")
    assert key == "kie/2026/03/07/market/bytedance-seedream-v4-text-to-image/7c1e0f3a/01.mp4"


def test_key_template_model_is_the_family_without_one() -> None:
    assert render("{prefix}{model}/{taskId}/{index}", model=None) == "kie/market/7c1e0f3a/01"
    assert render("{prefix}{model}/{taskId}/{index}", model="") == "kie/market/7c1e0f3a/01"
    assert render("{prefix}{model}/{taskId}/{index}", model="../..") == "kie/market/7c1e0f3a/01"


def test_key_template_date_is_utc() -> None:
    later_elsewhere = datetime.fromisoformat("2026-03-08T01:00:00+02:00")  # 23:00 on the 7th, UTC
    key = render("{prefix}{yyyy}-{mm}-{dd}/{taskId}/{index}", created_at=later_elsewhere)
    assert key == "kie/2026-03-07/7c1e0f3a/01"


@pytest.mark.parametrize(
    ("value", "segment"),
    [
        ("bytedance/seedream-v4", "bytedance-seedream-v4"),
        ("kling-3.0/video", "kling-3.0-video"),
        ("a b\\c?d#e%f", "a-b-c-d-e-f"),
        ("émoji 🎵 model", "moji-model"),
        ("..", ""),
        ("./x/..", "x"),
        ("x" * 300, "x" * 128),
    ],
)
def test_key_segment_keeps_only_safe_characters(value: str, segment: str) -> None:
    assert key_segment(value) == segment


@pytest.mark.parametrize(
    ("template", "complaint"),
    [
        ("{prefix}{taskId}/{nope}{ext}", "{nope}"),
        ("{prefix}{taskid}/{index}{ext}", "{taskid}"),
        ("{prefix}{index}{ext}", "{taskId}"),
        ("{prefix}{taskId}/{ext}", "{index}"),
        ("", "{prefix}"),
        ("{taskId}/{index}{ext}", "start with {prefix}"),  # S3 writes are allowed under the prefix only
        ("archive/{prefix}{taskId}/{index}{ext}", "start with {prefix}"),
        ("{prefix}{taskId}/{index{ext}", "{"),
        ("{prefix}{taskId}/}{index}{ext}", "}"),
        ("{prefix}{taskId} /{index}{ext}", "' '"),
        ("{prefix}{taskId}#/{index}{ext}", "'#'"),
        ("{prefix}{taskId}/ü{index}{ext}", "'ü'"),
        # Issue 21 (7): {taskId} not a whole path segment, so two tasks could share a key.
        ("{prefix}{taskId}{index}{ext}", "{taskId} must be a whole path segment"),
        ("{prefix}{index}{taskId}/{ext}", "{taskId} must be a whole path segment"),
        ("{prefix}{taskId}-{index}/{ext}", "{taskId} must be a whole path segment"),
        ("{prefix}x{taskId}/{index}", "{taskId} must be a whole path segment"),
        ("{prefix}{model}{prefix}{taskId}/{index}", "{taskId} must be a whole path segment"),
        ("{prefix}{index}/{taskId}", "{taskId} must be a whole path segment"),
        ("{prefix}{index}/{taskId}{ext}", "{taskId} must be a whole path segment"),
    ],
)
def test_key_template_refuses_what_it_cannot_render(template: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        KeyTemplate.parse(template)


def test_settings_key_template_defaults_to_todays_layout() -> None:
    assert Settings.from_environ(BASE).key_template == DEFAULT_KEY_TEMPLATE


def test_settings_bad_key_template_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match=r"KEY_TEMPLATE: .*\{nope\}"):
        Settings.from_environ({**BASE, "KEY_TEMPLATE": "{prefix}{taskId}/{nope}{ext}"})
    with pytest.raises(ConfigurationError, match=r"KEY_TEMPLATE: .*\{index\}"):
        Settings.from_environ({**BASE, "KEY_TEMPLATE": "{prefix}{taskId}/{ext}"})
    with pytest.raises(ConfigurationError, match=r"KEY_TEMPLATE: .*\{taskId\} must be a whole path segment"):
        Settings.from_environ({**BASE, "KEY_TEMPLATE": "{prefix}{taskId}{index}{ext}"})


# The deploy-time check (template.yaml's AllowedPattern, a Java regex that Python's `re` reads the
# same way) and the start-time check (KeyTemplate.parse) accept and refuse the same templates.
AGREEMENT = [
    DEFAULT_KEY_TEMPLATE,
    "{prefix}{yyyy}/{mm}/{dd}/{model}/{taskId}/{index}{ext}",
    "archive/year={yyyy}/month={mm}/{family}/{taskId}_{index}{ext}",
    "{taskId}-{index}",
    "{prefix}{taskId}/{nope}{ext}",
    "{prefix}{index}{ext}",
    "{prefix}{taskId}/{ext}",
    "{prefix}{taskId}/{index{ext}",
    "{prefix}{taskId} /{index}{ext}",
    "{prefix}{taskId}/ü{index}{ext}",
    "",
    "{prefix}{taskId}{index}{ext}",
    "{prefix}{index}{taskId}/{ext}",
    "{prefix}{model}{prefix}{taskId}/{index}",
    "{prefix}{index}/{taskId}",
    "{prefix}{index}/{taskId}/",
    "{prefix}{taskId}//{index}",
    "{prefix}{taskId}/{index}-{taskId}{ext}",
    "{prefix}{taskId}{ext}/{taskId}/{index}",
]


@pytest.mark.parametrize("template", AGREEMENT)
def test_key_template_parameter_pattern_agrees_with_the_settings(template: str) -> None:
    parameter = load_template()["Parameters"]["KeyTemplate"]
    deployable = re.fullmatch(parameter["AllowedPattern"], template) is not None
    try:
        KeyTemplate.parse(template)
        startable = True
    except ValueError:
        startable = False
    assert deployable == startable, template
    assert parameter["Default"] == DEFAULT_KEY_TEMPLATE


# Templates made of every kind of piece a template may (or may not) hold, `/{taskId}/` often enough
# that many are accepted.
_PIECES = st.sampled_from(
    ["{prefix}", "{taskId}", "{family}", "{model}", "{index}", "{ext}", "{yyyy}", "{mm}", "{dd}",
     "/", "/", "/{taskId}/", "{prefix}{taskId}/", "-", "_", "=", "x", "{nope}", "{", "#", " "]
)  # fmt: skip
TEMPLATES = st.lists(_PIECES, max_size=8).map(lambda pieces: "".join(pieces))
STARTING = st.one_of(TEMPLATES, TEMPLATES.map(lambda t: "{prefix}" + t))


KEY_TEMPLATE_PATTERN = re.compile(load_template()["Parameters"]["KeyTemplate"]["AllowedPattern"])


def _startable(template: str) -> bool:
    try:
        KeyTemplate.parse(template)
    except ValueError:
        return False
    return True


@given(template=STARTING)
def test_key_template_parameter_pattern_agrees_with_the_settings_for_any_template(template: str) -> None:
    assert (KEY_TEMPLATE_PATTERN.fullmatch(template) is not None) == _startable(template), template


# Task ids as kie.ai's hex ids and the ids `POST /copies` accepts (models.TASK_ID_REGEX).
def _with_required(pieces: list[str], task_at: int, index_at: int) -> str:
    pieces = list(pieces)
    pieces.insert(task_at % (len(pieces) + 1), "{taskId}")
    pieces.insert(index_at % (len(pieces) + 1), "{index}")
    return "{prefix}" + "".join(pieces)


# Templates of valid pieces that hold {taskId} and {index} somewhere: the parse decides the rest.
CANDIDATES = st.builds(
    _with_required,
    st.lists(st.sampled_from(["{prefix}", "{family}", "{model}", "{ext}", "{yyyy}", "/", "/", "/", "-", "x"]), max_size=5),
    st.integers(0, 6),
    st.integers(0, 6),
)  # fmt: skip
# Task ids, indexes and models whose characters overlap, so that the keys of different tasks are
# near: `1` + `100` against `11` + `00`; model `a-x` + `-` + `1` against `a` + `-` + `x-1`.
GRID = list(
    itertools.product(
        ["1", "11", "10", "a", "a-x", "x", "x-1", "1-a", "0abc", "abc"],
        [0, 1, 10, 100],
        ["market", "veo"],
        [None, "a-x", "x", "1"],
        ["https://h.example/a.png", "https://h.example/c"],
        [CREATED],
    )
)


@settings(suppress_health_check=[HealthCheck.filter_too_much], deadline=None, max_examples=60)
@given(template=CANDIDATES.filter(_startable), prefix=st.sampled_from(["kie/", "", "kie", "-", "a/b-"]))
def test_key_template_never_gives_two_tasks_one_key(template: str, prefix: str) -> None:
    # Whatever OBJECT_PREFIX is (one value for every key of a stack): {taskId} as a whole segment,
    # or right after the leading {prefix}, makes the task id readable back from the key.
    parsed = KeyTemplate.parse(template)
    owner: dict[str, str] = {}
    for task_id, index, family, model, url, created_at in GRID:
        key = parsed.render(
            prefix=prefix, task_id=task_id, index=index, family=family, model=model, url=url,
            created_at=created_at,
        )  # fmt: skip
        assert owner.setdefault(key, task_id) == task_id, (template, prefix, key)


def test_copy_job_queued_before_the_model_existed_still_parses() -> None:
    body = '{"task_id": "t1", "index": 0, "source": "https://h/x.png", "kind": "image", "family": "market", "key": "k"}'
    assert CopyJob.model_validate_json(body).model is None
