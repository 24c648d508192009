"""`make deploy-guided`'s questions and saved answers, and the deploy settings' files."""

import json
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devstack import guided, preflight
from devstack.cli import UserError
from devstack.template import REPO_ROOT, load_template
from hypothesis import given
from hypothesis import strategies as st
from tests import docs
from tests.sam import sam_python

PARAMETERS_PAGE, PARAMETERS_SECTION = "docs/configuration.md", "## Parameters"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def answering(*typed: str) -> Any:
    """A stand-in for `input`: each call returns the next line typed, then EOF."""
    lines: Iterator[str] = iter(typed)
    prompts: list[str] = []

    def read(prompt: str) -> str:
        prompts.append(prompt)
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    read.prompts = prompts  # type: ignore[attr-defined]
    return read


def test_guided_asks_every_parameter_in_the_templates_order_with_its_meaning(
    template: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    names = list(template["Parameters"])
    read = answering(*[""] * len(names))
    answers = guided.ask(template, {}, read)
    assert list(answers) == names
    assert [prompt.split(" [")[0].strip() for prompt in read.prompts] == names
    assert answers["KieApiKeySecretId"] == "kie2s3/kie-api-key"  # Enter keeps the default
    shown = " ".join(capsys.readouterr().out.split())
    for spec in template["Parameters"].values():
        assert " ".join(spec["Description"].split())[:60] in shown


def test_guided_defaults_are_the_saved_answers(template: dict[str, Any]) -> None:
    names = list(template["Parameters"])
    read = answering(*[""] * len(names))
    answers = guided.ask(template, {"StorageClass": "GLACIER_IR"}, read)
    assert answers["StorageClass"] == "GLACIER_IR"
    assert "  StorageClass [GLACIER_IR]: " in read.prompts


def test_guided_asks_again_for_a_refused_value_and_takes_an_empty_one(
    template: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    names = list(template["Parameters"])
    typed = {
        "KieWebhookHmacSecretId": ['""'],
        "CallbackTokenSecretId": ["kie2s3/callback-token"],
        "StorageClass": ["GLACIER", "STANDARD_IA"],
        "ForwardUrl": ["https://abc.execute-api.eu-west-1.amazonaws.com/callbacks/kie", ""],
    }
    read = answering(*[line for name in names for line in typed.get(name, [""])])
    answers = guided.ask(template, {}, read)
    assert answers["KieWebhookHmacSecretId"] == ""
    assert answers["StorageClass"] == "STANDARD_IA"
    assert answers["ForwardUrl"] == ""
    out = capsys.readouterr().out
    assert "  refused: StorageClass='GLACIER' is not one of STANDARD, INTELLIGENT_TIERING" in out
    assert "callback route: forwarding there would loop" in out


def test_guided_without_an_answer_saves_nothing(template: dict[str, Any]) -> None:
    with pytest.raises(UserError, match="no answer for KieApiBaseUrl: nothing saved"):
        guided.ask(template, {}, answering())


ANSWERS = {
    "KeyTemplate": "{prefix}{yyyy}/{mm}/{taskId}/{index}{ext}",
    "AllowedSourceHosts": "a.example.com,*.b.example.com",
    "KieWebhookHmacSecretId": "",
    "ForwardUrl": "https://hooks.example.com/kie?token=a b",
}


def test_saved_answers_read_back_as_sam_reads_them(tmp_path: Path) -> None:
    local = tmp_path / "samconfig.local.toml"
    guided.save_answers(REPO_ROOT / "samconfig.toml", local, "prod", ANSWERS, "kie2s3-eu")
    saved = tomllib.loads(local.read_text())
    shared = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text())
    # samconfig.toml's settings are kept; the answers and the stack name are added.
    assert saved["default"] == shared["default"]
    assert saved["prod"]["deploy"]["parameters"]["capabilities"] == "CAPABILITY_IAM"
    settings = preflight.read_config(local, "prod")
    assert settings["stack_name"] == "kie2s3-eu"
    assert preflight.parse_overrides(settings["parameter_overrides"]) == ANSWERS
    script = (
        "import json, sys; from samcli.cli.types import CfnParameterOverridesType as T; "
        "print(json.dumps(T().convert((sys.argv[1],), None, None)))"
    )
    done = subprocess.run(
        [sam_python(), "-c", script, settings["parameter_overrides"]],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout) == ANSWERS


def test_committed_samconfig_names_the_stack_and_no_region_or_account() -> None:
    text = (REPO_ROOT / "samconfig.toml").read_text()
    config = tomllib.loads(text)
    assert set(config) >= {"version", "default", "prod"}
    for env in ("default", "prod"):
        settings = preflight.read_config(REPO_ROOT / "samconfig.toml", env)
        assert settings["stack_name"].startswith("kie2s3")
        assert settings["capabilities"] == "CAPABILITY_IAM"
        assert settings["resolve_s3"] is True
        assert settings["confirm_changeset"] is True
        assert not {"region", "profile", "s3_bucket"} & set(settings)
    assert preflight.read_config(REPO_ROOT / "samconfig.toml", "default")["stack_name"] == "kie2s3"
    assert "arn:" not in text


def test_guided_answers_are_gitignored() -> None:
    done = subprocess.run(
        ["git", "check-ignore", "-q", "samconfig.local.toml"], cwd=REPO_ROOT, check=False, timeout=30
    )
    assert done.returncode == 0
    done = subprocess.run(
        ["git", "check-ignore", "-q", "samconfig.toml"], cwd=REPO_ROOT, check=False, timeout=30
    )
    assert done.returncode == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('A=1 B="two words" C=""', {"A": "1", "B": "two words", "C": ""}),
        (["A=1", "B='x y'"], {"A": "1", "B": "x y"}),
        ("ParameterKey=A,ParameterValue=1", {"A": "1"}),
        ("", {}),
    ],
)
def test_parse_overrides(value: str | list[str], expected: dict[str, str]) -> None:
    assert preflight.parse_overrides(value) == expected


@pytest.mark.parametrize("value", ["StorageClass", "A=1 C=", "A=1 =2"])
def test_parse_overrides_refuses_what_sam_would_skip(value: str) -> None:
    # SAM drops such text silently, and the deploy then goes out without it.
    with pytest.raises(UserError, match="is not Key=Value"):
        preflight.parse_overrides(value)


# Each read by the preflight as SAM reads it (SAM 1.170's own parser, run in its venv).
SAM_READS = [
    'A=1 B="two words"',
    "A='single quoted' B=x",
    'A="say \\"hi\\"" B=\'it\\\'s\'',
    'A="back\\\\slash" B=a\\ b',
    "KeyTemplate={prefix}{taskId}/{index}{ext} AllowedSourceHosts=a.example.com,*.b.example.com",
    'ForwardUrl="https://h.example.com/k?token=a&b=c" KieWebhookHmacSecretId=""',
    'ParameterKey=A,ParameterValue=1 ParameterKey=B,ParameterValue="x y"',
    'Name="café 東京"',
]


def sam_reads(values: list[str]) -> list[dict[str, str]]:
    script = (
        "import json, sys; from samcli.cli.types import CfnParameterOverridesType as T; "
        "print(json.dumps([T().convert((v,), None, None) for v in json.loads(sys.stdin.read())]))"
    )
    done = subprocess.run(
        [sam_python(), "-c", script],
        input=json.dumps(values),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    parsed: list[dict[str, str]] = json.loads(done.stdout)
    return parsed


def test_parse_overrides_reads_as_sam_reads() -> None:
    assert [preflight.parse_overrides(value) for value in SAM_READS] == sam_reads(SAM_READS)


SAVABLE = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\\", min_codepoint=32))


@given(st.dictionaries(st.from_regex(r"[A-Za-z0-9]{1,12}", fullmatch=True), SAVABLE, max_size=6))
def test_saved_overrides_read_back_unchanged(answers: dict[str, str]) -> None:
    saved = " ".join(f"{key}={preflight.quote_override(value)}" for key, value in answers.items())
    assert preflight.parse_overrides(saved) == answers


def test_a_backslash_is_not_saved() -> None:
    with pytest.raises(UserError, match="backslash"):
        preflight.quote_override("a\\b")


def readme_parameter_table() -> list[tuple[str, str]]:
    """The Parameters table of docs/configuration.md: (parameter, meaning) of each row, in order."""
    section = docs.section(PARAMETERS_PAGE, PARAMETERS_SECTION)
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| `")]
    return [(row[1].strip().strip("`"), row[3].strip()) for row in rows]


def test_readme_parameter_table_lists_every_prompt_in_the_order_asked(template: dict[str, Any]) -> None:
    # SAM (and make deploy-guided) ask the template's parameters in the template's order.
    assert [name for name, _ in readme_parameter_table()] == list(template["Parameters"])
    assert all(meaning for _, meaning in readme_parameter_table())


def test_readme_parameter_table_defaults_are_the_templates(template: dict[str, Any]) -> None:
    section = docs.section(PARAMETERS_PAGE, PARAMETERS_SECTION)
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        name, default = (cell.strip() for cell in line.split("|")[1:3])
        declared = str(template["Parameters"][name.strip("`")].get("Default", ""))
        if default == "empty":
            assert declared == "", name
        elif default.startswith("`"):
            assert default.strip("`") == declared, name
