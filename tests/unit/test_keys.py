"""KeyTemplate: the placeholders it knows, the errors that name KEY_TEMPLATE, the keys it renders."""

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from devstack.template import load_template
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
        Settings.from_environ({**BASE, "KEY_TEMPLATE": "{prefix}{taskId}{ext}"})


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


def test_copy_job_queued_before_the_model_existed_still_parses() -> None:
    body = '{"task_id": "t1", "index": 0, "source": "https://h/x.png", "kind": "image", "family": "market", "key": "k"}'
    assert CopyJob.model_validate_json(body).model is None
