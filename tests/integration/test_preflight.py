"""`make preflight` against the AWS emulator (moto's server): each problem is one line with its fix, and
any problem exits non-zero, so `make deploy` deploys nothing.

Each test deploys "to" us-east-1 with everything right but the one thing it breaks; the emulator
holds every region, so a secret, bucket or key can sit in another one.
"""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from devstack import preflight
from devstack.aws import MotoServer
from devstack.cli import run
from devstack.template import REPO_ROOT

REGION = "us-east-1"
ELSEWHERE = "eu-west-1"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def aws(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """The process's AWS configuration: the emulator, keys from the environment, us-east-1."""
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    env = {
        "AWS_ENDPOINT_URL": moto.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def client(service: str, region: str = REGION) -> Any:
    return boto3.client(service, region_name=region)  # type: ignore[call-overload]


@pytest.fixture
def secrets(aws: dict[str, str]) -> dict[str, str]:
    """A kie.ai API key and a webhook HMAC key, stored in us-east-1 under names of this test's own."""
    prefix = f"pf-{uuid.uuid4().hex[:8]}"
    names = {"KieApiKeySecretId": f"{prefix}/kie-api-key", "KieWebhookHmacSecretId": f"{prefix}/hmac"}
    for name in names.values():
        client("secretsmanager").create_secret(Name=name, SecretString="a-plain-value")
    return names


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], **overrides: str) -> tuple[int, str, str]:
    """`python -m devstack.preflight` with these parameter overrides: its status, stdout, stderr."""
    config = tmp_path / "samconfig.toml"
    config.write_text('version = 0.1\n[default.deploy.parameters]\nstack_name = "kie2s3-preflight"\n')
    params = " ".join(f'{key}="{value}"' for key, value in overrides.items())
    status = run(preflight.main, ["--config-file", str(config), "--params", params])
    out, err = capsys.readouterr()
    return status, out, err


def problems(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("problem: ")]


def test_preflight_passes_and_names_the_target(
    secrets: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = check(tmp_path, capsys, **secrets)
    assert (status, err) == (0, "")
    assert "preflight: stack kie2s3-preflight in account 123456789012, region us-east-1" in out
    assert out.rstrip().endswith("preflight: ready to deploy")


def test_preflight_missing_secret(
    secrets: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = check(tmp_path, capsys, **{**secrets, "KieApiKeySecretId": "pf-nowhere/kie-api-key"})
    assert status == 1
    assert problems(err) == [
        "problem: secret pf-nowhere/kie-api-key (KieApiKeySecretId) does not exist in us-east-1; fix: "
        "aws secretsmanager create-secret --region us-east-1 --name pf-nowhere/kie-api-key "
        '--secret-string "<your kie.ai API key>"'
    ]
    assert err.splitlines()[-1] == "preflight: 1 problem, nothing deployed"


def test_preflight_secret_in_another_region(
    secrets: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # What the README's old order led to: the secrets created in the user's region, the stack in another.
    name = f"pf-{uuid.uuid4().hex[:8]}/hmac"
    client("secretsmanager", ELSEWHERE).create_secret(Name=name, SecretString="a-plain-value")
    status, _, err = check(tmp_path, capsys, **{**secrets, "KieWebhookHmacSecretId": name})
    assert status == 1
    [line] = problems(err)
    assert line.startswith(
        f"problem: secret {name} (KieWebhookHmacSecretId) does not exist in us-east-1; fix: "
    )


def test_preflight_secret_holding_json(
    secrets: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client("secretsmanager").put_secret_value(
        SecretId=secrets["KieApiKeySecretId"], SecretString='{"apiKey": "secret-value-never-printed"}'
    )
    status, out, err = check(tmp_path, capsys, **secrets)
    assert status == 1
    [line] = problems(err)
    assert "holds JSON (the console's key/value form)" in line
    assert "secret-value-never-printed" not in out + err


def test_preflight_missing_bucket(
    secrets: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = check(tmp_path, capsys, **secrets, ExistingBucketName="pf-no-such-bucket")
    assert status == 1
    [line] = problems(err)
    assert line.startswith("problem: bucket pf-no-such-bucket (ExistingBucketName) does not exist; fix: ")


def test_preflight_bucket_in_another_region(
    secrets: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = f"pf-{uuid.uuid4().hex[:8]}"
    client("s3", ELSEWHERE).create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": ELSEWHERE}
    )
    status, _, err = check(tmp_path, capsys, **secrets, ExistingBucketName=bucket)
    assert status == 1
    assert problems(err) == [
        f"problem: bucket {bucket} (ExistingBucketName) is in eu-west-1, the stack deploys to us-east-1; "
        "fix: deploy in its region (REGION=eu-west-1), or use a bucket of us-east-1"
    ]


def test_preflight_bucket_without_the_versioning_object_lock_needs(
    secrets: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = f"pf-{uuid.uuid4().hex[:8]}"
    client("s3").create_bucket(Bucket=bucket)
    status, _, err = check(
        tmp_path, capsys, **secrets, ExistingBucketName=bucket, ObjectLockRetentionDays="30"
    )
    assert status == 1
    [line] = problems(err)
    assert line.startswith(
        f"problem: bucket {bucket} has versioning off; ObjectLockRetentionDays=30 needs versioning and "
        "Object Lock"
    )
    assert f"put-bucket-versioning --bucket {bucket}" in line


def test_preflight_versioned_bucket_without_object_lock(
    secrets: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = f"pf-{uuid.uuid4().hex[:8]}"
    client("s3").create_bucket(Bucket=bucket)
    client("s3").put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    status, _, err = check(
        tmp_path, capsys, **secrets, ExistingBucketName=bucket, ObjectLockRetentionDays="30"
    )
    assert status == 1
    [line] = problems(err)
    assert line.startswith(
        f"problem: bucket {bucket} has no Object Lock; ObjectLockRetentionDays=30 asks for it"
    )


def test_preflight_accepts_a_locked_bucket(
    secrets: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = f"pf-{uuid.uuid4().hex[:8]}"
    client("s3").create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    status, _, err = check(
        tmp_path, capsys, **secrets, ExistingBucketName=bucket, ObjectLockRetentionDays="30"
    )
    assert (status, err) == (0, "")


def test_preflight_bucket_encrypted_with_a_key_the_functions_may_not_use(
    secrets: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = f"pf-{uuid.uuid4().hex[:8]}"
    key = client("kms").create_key()["KeyMetadata"]["Arn"]
    client("s3").create_bucket(Bucket=bucket)
    client("s3").put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}}
            ]
        },
    )
    status, _, err = check(tmp_path, capsys, **secrets, ExistingBucketName=bucket)
    assert status == 1
    assert problems(err) == [
        f"problem: bucket {bucket} encrypts with KMS key {key} by default, which the functions may not use; "
        "fix: deploy with KmsKeyArn=<that key's ARN> (README, Your KMS key)"
    ]
    status, _, err = check(tmp_path, capsys, **secrets, ExistingBucketName=bucket, KmsKeyArn=key)
    assert (status, err) == (0, "")


def test_preflight_kms_key_in_another_region(
    secrets: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = client("kms", ELSEWHERE).create_key()["KeyMetadata"]["Arn"]
    status, _, err = check(tmp_path, capsys, **secrets, KmsKeyArn=key)
    assert status == 1
    [line] = problems(err)
    assert line.startswith(
        f"problem: KMS key {key} (KmsKeyArn) is in eu-west-1, the stack deploys to us-east-1: "
        "S3 uses keys of the bucket's region only; fix: "
    )


def test_preflight_kms_key_that_does_not_exist(
    secrets: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = f"arn:aws:kms:us-east-1:123456789012:key/{uuid.uuid4()}"
    status, _, err = check(tmp_path, capsys, **secrets, KmsKeyArn=key)
    assert status == 1
    assert problems(err) == [
        f"problem: KMS key {key} (KmsKeyArn) does not exist; fix: give the ARN of a key of yours (aws kms list-keys)"
    ]


@pytest.fixture
def forward_key(secrets: dict[str, str]) -> dict[str, str]:
    name = secrets["KieApiKeySecretId"].replace("kie-api-key", "forward-key")
    client("secretsmanager").create_secret(Name=name, SecretString="a-forward-key")
    return {**secrets, "ForwardHmacSecretId": name}


def test_preflight_forward_url_not_https(
    forward_key: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = check(tmp_path, capsys, **forward_key, ForwardUrl="http://hooks.example.com/kie")
    assert status == 1
    [line] = problems(err)
    assert line.startswith("problem: ForwardUrl: not a permitted target (")
    assert "https" in line


def test_preflight_forward_url_that_loops(
    forward_key: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "https://abc123.execute-api.us-east-1.amazonaws.com/Prod/Callbacks/KIE/"
    status, _, err = check(tmp_path, capsys, **forward_key, ForwardUrl=url)
    assert status == 1
    [line] = problems(err)
    assert line.startswith("problem: ForwardUrl: ")
    assert "kie2s3's own callback route: forwarding there would loop" in line


def test_preflight_forward_url_of_your_own_handler_passes(
    forward_key: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = check(
        tmp_path, capsys, **forward_key, ForwardUrl="https://hooks.example.com/kie?token=t"
    )
    assert (status, err) == (0, "")


def test_preflight_reports_every_problem_at_once(
    aws: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = check(
        tmp_path,
        capsys,
        KieApiKeySecretId="pf-nowhere/api",
        KieWebhookHmacSecretId="none",
        ExistingBucketName="pf-no-such-bucket",
        StorageClass="GLACIER",
    )
    assert status == 1
    found = problems(err)
    assert len(found) == 4, found
    assert any("every callback would be refused" in line for line in found)
    assert any(line.startswith("problem: StorageClass='GLACIER' is not one of STANDARD") for line in found)
    assert err.splitlines()[-1] == "preflight: 4 problems, nothing deployed"


def test_preflight_command_exits_non_zero(
    secrets: dict[str, str], aws: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "samconfig.toml"
    config.write_text(
        'version = 0.1\n[prod.deploy.parameters]\nstack_name = "kie2s3-prod"\n'
        f'parameter_overrides = "KieApiKeySecretId=pf-nowhere/api KieWebhookHmacSecretId={secrets["KieWebhookHmacSecretId"]}"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "devstack.preflight", "--config-file", str(config), "--config-env", "prod"],
        cwd=REPO_ROOT,
        env={**os.environ, **aws, "PYTHONPATH": f"src/handler{os.pathsep}."},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "preflight: stack kie2s3-prod in account 123456789012, region us-east-1" in done.stdout
    assert problems(done.stderr) == [
        "problem: secret pf-nowhere/api (KieApiKeySecretId) does not exist in us-east-1; fix: "
        'aws secretsmanager create-secret --region us-east-1 --name pf-nowhere/api --secret-string "<your kie.ai API key>"'
    ]


def test_guided_deploy_preflights_the_answers_it_saves(
    secrets: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from devstack import guided

    saved = tmp_path / "samconfig.local.toml"
    # Enter everywhere but the two secrets; the API key's secret is one this region does not hold.
    answers = {
        "KieApiKeySecretId": "pf-nowhere/kie-api-key",
        "KieWebhookHmacSecretId": secrets["KieWebhookHmacSecretId"],
    }
    monkeypatch.setattr("builtins.input", lambda prompt: answers.get(prompt.split(" [")[0].strip(), ""))
    argv = ["--stack-name", "kie2s3-guided", "--save-to", str(saved)]
    assert run(guided.main, argv) == 1
    out, err = capsys.readouterr()
    assert "preflight: stack kie2s3-guided in account 123456789012, region us-east-1" in out
    [line] = problems(err)
    assert line.startswith(
        "problem: secret pf-nowhere/kie-api-key (KieApiKeySecretId) does not exist in us-east-1"
    )
    settings = preflight.read_config(saved, "default")
    assert settings["stack_name"] == "kie2s3-guided"
    assert (
        preflight.parse_overrides(settings["parameter_overrides"])["KieApiKeySecretId"]
        == "pf-nowhere/kie-api-key"
    )

    answers["KieApiKeySecretId"] = secrets["KieApiKeySecretId"]
    assert run(guided.main, argv) == 0
    assert capsys.readouterr().out.rstrip().endswith("preflight: ready to deploy")
