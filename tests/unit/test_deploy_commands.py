"""The deploy commands work as the README writes them: PARAMS reach `sam deploy`, REGION reaches redrive.

The make targets run with `-n` (nothing is deployed; `require-aws=` skips the credential check) and
the `sam deploy` line make prints is then run by bash against a stand-in `sam` that parses its
`--parameter-overrides` with the SAM CLI's own parser: what SAM would deploy with.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
from devstack import cli, redrive
from devstack.cli import UserError
from devstack.template import REPO_ROOT

SAM_PYTHON = REPO_ROOT / ".tools" / "sam" / "bin" / "python"
STUB = """#!{python}
import json, sys
from samcli.cli.types import CfnParameterOverridesType

args = sys.argv[1:]
at = args.index("--parameter-overrides") if "--parameter-overrides" in args else len(args)
overrides = CfnParameterOverridesType().convert(tuple(args[at + 1 :]), None, None)
print(json.dumps({{"command": args[:at], "overrides": overrides}}))
"""
TOKEN_MODE = "KieWebhookHmacSecretId=none CallbackTokenSecretId=kie2s3/callback-token"


def make_dry_run(*args: str) -> list[str]:
    """The command lines make would run (`-n`), one a line."""
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", "-o", ".venv/.synced", "require-aws=", *args],
        cwd=REPO_ROOT,
        env={k: v for k, v in os.environ.items() if k not in ("PARAMS", "REGION")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.fixture(scope="module")
def sam_stub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SAM_PYTHON.exists():
        pytest.fail(f"{SAM_PYTHON} is missing: `make dev` installs the SAM CLI")
    stub = tmp_path_factory.mktemp("sam") / "sam"
    stub.write_text(STUB.format(python=SAM_PYTHON))
    stub.chmod(0o755)
    return stub


def sam_deploy(target: str, stub: Path, params: str | None) -> dict[str, object]:
    """What `sam deploy` receives from `make <target> [PARAMS=...]`: its arguments and overrides."""
    given = [f"PARAMS={params}"] if params is not None else []
    [line] = [line for line in make_dry_run(target, f"SAM={stub}", *given) if f"{stub} deploy" in line]
    # make exports a variable given on its command line to its recipes' environment.
    env = {**os.environ, **({"PARAMS": params} if params is not None else {})}
    done = subprocess.run(
        ["bash", "-c", line], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    parsed: dict[str, object] = json.loads(done.stdout)
    return parsed


@pytest.mark.parametrize("target", ["deploy", "deploy-guided"])
def test_deploy_passes_params_as_parameter_overrides(target: str, sam_stub: Path) -> None:
    got = sam_deploy(target, sam_stub, TOKEN_MODE)
    assert got["overrides"] == {
        "KieWebhookHmacSecretId": "none",
        "CallbackTokenSecretId": "kie2s3/callback-token",
    }
    assert got["command"] == (["deploy", "--guided"] if target == "deploy-guided" else ["deploy"])


def test_deploy_params_may_give_an_empty_value(sam_stub: Path) -> None:
    got = sam_deploy("deploy", sam_stub, 'KieWebhookHmacSecretId="" StorageClass=GLACIER_IR')
    assert got["overrides"] == {"KieWebhookHmacSecretId": "", "StorageClass": "GLACIER_IR"}


def test_deploy_without_params_sends_no_overrides(sam_stub: Path) -> None:
    # samconfig.toml's saved values then apply (SAM replaces them when overrides are given).
    got = sam_deploy("deploy", sam_stub, None)
    assert got == {"command": ["deploy"], "overrides": {}}


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
