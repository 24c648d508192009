"""The deploy commands work as the README writes them: PARAMS reach `sam deploy`, the region reaches
SAM only when one is given (SAM then resolves it as the preflight does), REGION reaches redrive.

`make deploy` and `make deploy-guided` run for real with stand-ins: `sam` is a script that parses its
`--parameter-overrides` with the SAM CLI's own parser and records them, its other arguments and the
region variables it sees; the project's python (RUN, which runs the preflight and the guided questions)
records its arguments. `require-aws=` skips the credential check. Nothing reaches AWS.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from devstack import cli, redrive
from devstack.cli import UserError
from devstack.template import REPO_ROOT
from tests.sam import sam_python

SAM_STUB = """#!{python}
import json, os, sys

args = sys.argv[1:]
at = args.index("--parameter-overrides") if "--parameter-overrides" in args else len(args)
overrides = {{}}
if args[at + 1 :]:  # the SAM CLI's own parser (slow to import: only where there is something to parse)
    from samcli.cli.types import CfnParameterOverridesType
    overrides = CfnParameterOverridesType().convert(tuple(args[at + 1 :]), None, None)
region = {{name: os.environ.get(name) for name in ("AWS_REGION", "AWS_DEFAULT_REGION")}}
with open(os.environ["STAND_IN_LOG"], "a") as log:
    log.write(json.dumps({{"sam": args[:at], "overrides": overrides, "env": region}}) + "\\n")
"""
RUN_STUB = """#!{python}
import json, os, sys
with open(os.environ["STAND_IN_LOG"], "a") as log:
    log.write(json.dumps({{"run": sys.argv[1:]}}) + "\\n")
"""
TOKEN_MODE = "KieWebhookHmacSecretId=none CallbackTokenSecretId=kie2s3/callback-token"
# The process's own AWS configuration is the test's to set: none of it leaks in from the machine.
AWS_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE", "REGION", "PARAMS")


def make_dry_run(*args: str, env: dict[str, str] | None = None) -> list[str]:
    """The command lines make would run (`-n`), one a line."""
    done = subprocess.run(
        [
            "make",
            "-n",
            "--no-print-directory",
            "-o",
            ".venv/.synced",
            "-o",
            ".venv/.synced-commands",
            "require-aws=",
            *args,
        ],
        cwd=REPO_ROOT,
        env={**{k: v for k, v in os.environ.items() if k not in AWS_VARIABLES}, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("stand-ins")
    stubs = {"sam": SAM_STUB.format(python=sam_python()), "run": RUN_STUB.format(python=sys.executable)}
    for name, text in stubs.items():
        (directory / name).write_text(text)
        (directory / name).chmod(0o755)
    venv = directory / "venv"
    venv.mkdir()
    for stamp in (".synced", ".synced-commands"):
        (venv / stamp).touch()
    return {name: directory / name for name in stubs} | {"venv": venv}


def make_deploy(
    target: str, stand_ins: dict[str, Path], tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """What `make <target> [args]` ran, in order: each `sam` call and each project-python call."""
    log = tmp_path / "calls.jsonl"
    log.unlink(missing_ok=True)
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            # Installed, as far as make can tell, for this make and the ones it starts (`-o` does not
            # reach those: `make deploy`'s preflight would sync the project's own environment).
            f"VENV={stand_ins['venv']}",
            "require-aws=",
            f"SAM={stand_ins['sam']}",
            f"RUN={stand_ins['run']}",
            "DEPLOY_CONFIG=samconfig.toml",
            target,
            *args,
        ],
        cwd=REPO_ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k not in AWS_VARIABLES},
            "AWS_CONFIG_FILE": os.devnull,
            "STAND_IN_LOG": str(log),
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


def sam_deploy(calls: list[dict[str, Any]]) -> dict[str, Any]:
    [deploy] = [call for call in calls if call.get("sam", [""])[0] == "deploy"]
    return deploy


def python_runs(calls: list[dict[str, Any]]) -> list[list[str]]:
    return [call["run"] for call in calls if "run" in call]


def test_deploy_passes_params_as_parameter_overrides(stand_ins: dict[str, Path], tmp_path: Path) -> None:
    got = sam_deploy(make_deploy("deploy", stand_ins, tmp_path, f"PARAMS={TOKEN_MODE}"))
    assert got["overrides"] == {
        "KieWebhookHmacSecretId": "none",
        "CallbackTokenSecretId": "kie2s3/callback-token",
    }
    assert got["sam"] == ["deploy", "--config-file", "samconfig.toml", "--config-env", "default"]


def test_deploy_params_may_give_an_empty_value(stand_ins: dict[str, Path], tmp_path: Path) -> None:
    got = sam_deploy(
        make_deploy("deploy", stand_ins, tmp_path, 'PARAMS=KieWebhookHmacSecretId="" StorageClass=GLACIER_IR')
    )
    assert got["overrides"] == {"KieWebhookHmacSecretId": "", "StorageClass": "GLACIER_IR"}


def test_deploy_without_params_sends_no_overrides(stand_ins: dict[str, Path], tmp_path: Path) -> None:
    # The config file's saved values then apply (SAM replaces them when overrides are given).
    assert sam_deploy(make_deploy("deploy", stand_ins, tmp_path))["overrides"] == {}


def test_deploy_runs_the_preflight_on_the_same_target_before_building(
    stand_ins: dict[str, Path], tmp_path: Path
) -> None:
    calls = make_deploy(
        "deploy",
        stand_ins,
        tmp_path,
        "CONFIG_ENV=prod",
        "STACK_NAME=kie2s3-eu",
        "REGION=eu-west-1",
        f"PARAMS={TOKEN_MODE}",
    )
    target = ["--config-env", "prod", "--stack-name", "kie2s3-eu", "--region", "eu-west-1"]
    assert python_runs(calls) == [
        ["-m", "devstack.preflight", "--config-file", "samconfig.toml", *target, "--params", TOKEN_MODE]
    ]
    assert [call.get("sam", ["-"])[0] for call in calls] == ["-", "build", "deploy"]
    assert sam_deploy(calls)["sam"] == ["deploy", "--config-file", "samconfig.toml", *target]


def test_deploy_guided_asks_then_deploys_the_saved_answers(
    stand_ins: dict[str, Path], tmp_path: Path
) -> None:
    calls = make_deploy("deploy-guided", stand_ins, tmp_path, f"PARAMS={TOKEN_MODE}")
    # PARAMS are the questions' defaults; the answers (preflighted) are in samconfig.local.toml.
    assert python_runs(calls) == [
        ["-m", "devstack.guided", "--config-env", "default", "--params", TOKEN_MODE]
    ]
    assert sam_deploy(calls) == {
        "sam": ["deploy", "--config-file", "samconfig.local.toml", "--config-env", "default"],
        "overrides": {},
        "env": {"AWS_REGION": None, "AWS_DEFAULT_REGION": None},
    }


@pytest.mark.parametrize("target", ["deploy", "deploy-guided"])
def test_deploy_passes_the_region_given_to_sam(
    target: str, stand_ins: dict[str, Path], tmp_path: Path
) -> None:
    calls = make_deploy(
        target, stand_ins, tmp_path, "REGION=eu-west-1", env={"AWS_DEFAULT_REGION": "us-east-1"}
    )
    got = sam_deploy(calls)
    assert got["sam"][-2:] == ["--region", "eu-west-1"]
    assert got["env"] == {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1"}
    assert all(run[-2:] == ["--region", "eu-west-1"] for run in python_runs(calls))


@pytest.mark.parametrize("target", ["deploy", "deploy-guided"])
def test_deploy_without_region_leaves_it_to_the_aws_configuration(
    target: str, stand_ins: dict[str, Path], tmp_path: Path
) -> None:
    # Issue 22: AWS_DEFAULT_REGION=eu-west-1 deployed to us-east-1, the Makefile's own default.
    calls = make_deploy(target, stand_ins, tmp_path, env={"AWS_DEFAULT_REGION": "eu-west-1"})
    got = sam_deploy(calls)
    assert "--region" not in got["sam"]
    assert got["env"] == {"AWS_REGION": None, "AWS_DEFAULT_REGION": "eu-west-1"}
    assert all("--region" not in run for run in python_runs(calls))


@pytest.mark.parametrize("target", ["deploy", "deploy-guided"])
def test_deploy_without_any_region_passes_none(
    target: str, stand_ins: dict[str, Path], tmp_path: Path
) -> None:
    # SAM's own resolution applies (the credential check has already asked for a region).
    got = sam_deploy(make_deploy(target, stand_ins, tmp_path))
    assert "--region" not in got["sam"]
    assert got["env"] == {"AWS_REGION": None, "AWS_DEFAULT_REGION": None}


def test_redrive_passes_the_region_given() -> None:
    [line] = [
        line for line in make_dry_run("redrive", "STACK_NAME=kie2s3", "REGION=eu-west-1") if "redrive" in line
    ]
    assert line.endswith('-m devstack.redrive --stack-name "kie2s3" --region "eu-west-1"')


def test_redrive_without_region_uses_the_aws_configuration() -> None:
    [line] = [line for line in make_dry_run("redrive", "STACK_NAME=kie2s3") if "redrive" in line]
    assert line.endswith('-m devstack.redrive --stack-name "kie2s3"')


def test_redrive_asks_aws_in_the_region_given(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: dict[str, object] = {}

    def session(purpose: str, **options: object) -> object:
        asked.update(options, purpose=purpose)
        raise UserError("stop here")

    monkeypatch.setattr(redrive, "aws_session", session)
    with pytest.raises(UserError):
        redrive.main(["--stack-name", "kie2s3", "--region", "eu-west-1"])
    assert asked == {"purpose": "make redrive STACK_NAME=kie2s3", "region": "eu-west-1"}


def test_aws_session_in_the_region_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    assert cli.aws_session("make redrive", region="eu-west-1").region_name == "eu-west-1"
