"""`make preflight`: what a deploy needs, checked in the account and region it would deploy to.

`make deploy` and `make deploy-guided` run it on the parameters they are about to deploy with, and
deploy nothing while a problem remains. It prints the account, region and stack name first, then
one line per problem with its fix, and exits 1 if there is any:
    python -m devstack.preflight [--config-env default] [--config-file F] [--stack-name S]
                                 [--region R] [--params "Key=Value ..."]
The parameters are resolved as `sam deploy` resolves them: `--params` (make's PARAMS), else the
config file's saved `parameter_overrides` (SAM replaces, never merges, the two); then, for an
existing stack, the values of its last deployment; then the template's defaults.

Checked: credentials and region; every parameter against its AllowedValues, AllowedPattern and
bounds; each secret the parameters name exists in that region (DescribeSecret), and its value's
shape where the caller may read it (GetSecretValue), else it is reported as not checked; an
ExistingBucketName exists in that region, with the versioning and Object Lock that
ObjectLockRetentionDays asks for and a default encryption the functions may use; a KmsKeyArn is a
usable key of that region; ForwardUrl is a permitted forward target (the forwarder's own rule,
kie2s3.settings.forward_target_refusal: https, never kie2s3's own callback route).
"""

import argparse
import json
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from devstack.cli import Parser, UserError, aws_session, run
from devstack.template import REPO_ROOT, load_template

# The committed deploy settings (no region, no account) and the file `make deploy-guided` saves a
# person's answers to (gitignored: it holds their account's ARNs); `make deploy` prefers the latter.
CONFIG_FILE: Final = "samconfig.toml"
LOCAL_CONFIG_FILE: Final = "samconfig.local.toml"
DEFAULT_CONFIG_ENV: Final = "default"
# A secret parameter with one of these values names no secret ("none": what a guided prompt can take).
OFF: Final = ("", "none")
# Template parameters naming a secret, and what the secret holds (for the fix's create-secret line).
SECRET_PARAMETERS: Final = {
    "KieApiKeySecretId": "your kie.ai API key",
    "KieWebhookHmacSecretId": "kie.ai's webhook HMAC key",
    "CallbackTokenSecretId": "a random token: openssl rand -hex 32",
    "ForwardHmacSecretId": "the key forwarded callbacks are signed with: openssl rand -hex 32",
}
# S3's answer for a bucket of us-east-1 (no LocationConstraint) and the legacy name of eu-west-1.
_LOCATIONS: Final = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}
# Parameters a check of their own judges with the functions' own rule (the template's AllowedPattern
# only mirrors it): one line per problem, not one per rule that sees it.
_JUDGED_BY_THEIR_CHECK: Final = frozenset({"ForwardUrl"})
_DENIED: Final = ("AccessDenied", "AccessDeniedException", "403", "UnauthorizedOperation")


@dataclass(frozen=True)
class Problem:
    """One thing that would break the deployed stack, and what to do about it (one line)."""

    what: str
    fix: str

    def __str__(self) -> str:
        return f"problem: {self.what}; fix: {self.fix}"


@dataclass
class Report:
    """What the checks found: problems (no deploy while any remains) and what they could not check."""

    problems: list[Problem] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)

    def problem(self, what: str, fix: str) -> None:
        self.problems.append(Problem(what, fix))


@dataclass(frozen=True)
class Deployment:
    """Where a deploy goes and with what: the resolved target and every parameter's value."""

    account: str
    region: str
    stack_name: str
    parameters: dict[str, str]


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _denied(exc: Exception) -> bool:
    return _error_code(exc) in _DENIED


# ---------------------------------------------------------------------------------------------- settings


def config_path(config_file: str | None) -> Path:
    """The SAM config file a deploy reads: the one given, else the guided answers if saved, else the
    committed one."""
    if config_file:
        return Path(config_file)
    local = REPO_ROOT / LOCAL_CONFIG_FILE
    return local if local.exists() else REPO_ROOT / CONFIG_FILE


def read_config(path: Path, env: str, *, given: bool = False) -> dict[str, Any]:
    """One environment's deploy settings of a SAM config file (its global and deploy parameters);
    none when the default file is missing, a UserError when the file `given` is."""
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError as exc:
        if given:
            raise UserError(f"config file {path} does not exist") from exc
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"cannot read {path.name}: {exc}") from exc
    section = document.get(env)
    if not isinstance(section, dict):
        raise UserError(
            f"{path.name} has no [{env}] environment: add one (see its [default]) or pick another"
        )
    settings: dict[str, Any] = {}
    for command in ("global", "deploy"):
        settings.update((section.get(command) or {}).get("parameters") or {})
    return settings


# SAM CLI's own reading of `Key=Value Key2="a b"` (samcli/cli/types.py, CfnParameterOverridesType, 1.170),
# so that the preflight checks what SAM deploys: a value is a "double-" or 'single-quoted' run in which a
# backslash escapes the next character, or an unquoted run up to a space; the wrapping quotes are then
# removed and only \<space>, \" and \' unescaped.
_OVERRIDE_KEY: Final = r"""([A-Za-z0-9"']+)"""
_OVERRIDE_VALUE: Final = r"""("(?:\\.|[^"\\]+)*"|'(?:\\.|[^'\\]+)*'|(?:\\.|[^ "\\]+)+)"""
_OVERRIDE_PATTERNS: Final = (
    re.compile(rf"(?:ParameterKey={_OVERRIDE_KEY},ParameterValue={_OVERRIDE_VALUE})"),
    re.compile(rf"(?: ){_OVERRIDE_KEY}={_OVERRIDE_VALUE}"),
)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    return text.replace("\\ ", " ").replace('\\"', '"').replace("\\'", "'")


def parse_overrides(value: str | Sequence[str]) -> dict[str, str]:
    """`Key=Value Key2="a b" Key3=` (PARAMS, or a config file's parameter_overrides) as SAM reads it.

    Stricter than SAM in one way: text that is no `Key=Value` is refused, where SAM skips it."""
    items = [value] if isinstance(value, str) else list(value)
    found: dict[str, str] = {}
    for item in items:
        if not item.strip():
            continue
        normalized = " " + item.strip()
        for pattern in _OVERRIDE_PATTERNS:
            if pairs := pattern.findall(normalized):
                left = pattern.sub("", normalized).strip()
                break
        else:
            pairs, left = [], item.strip()
        if left:
            raise UserError(
                f'parameter overrides: {left!r} is not Key=Value (an empty value is Key="", as SAM reads it)'
            )
        found.update(pairs)
    return {_unquote(key): _unquote(text) for key, text in found.items()}


def unsavable(value: str) -> str | None:
    """Why SAM's parameter_overrides cannot carry `value` unchanged, None when they can."""
    if "\\" in value or any(ord(char) < 32 for char in value):
        return "a backslash or a control character cannot be saved in SAM's parameter_overrides"
    return None


def quote_override(value: str) -> str:
    """A value as parse_overrides (and SAM) read it back unchanged; a backslash cannot be written so."""
    if (refused := unsavable(value)) is not None:
        raise UserError(refused)
    return '"' + value.replace('"', '\\"') + '"'


def parameter_problem(name: str, spec: Mapping[str, Any], value: str) -> str | None:
    """Why CloudFormation would refuse `value` for the parameter `spec` declares, None if it would not."""
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [str(item) for item in allowed]:
        return f"{name}={value!r} is not one of {', '.join(str(item) for item in allowed)}"
    pattern = spec.get("AllowedPattern")
    if pattern is not None and re.fullmatch(str(pattern), value) is None:
        return f"{name}={value!r} is not {spec.get('ConstraintDescription') or f'of the form {pattern}'}"
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        return f"{name} may not be empty" if not value else f"{name} is too short"
    if spec.get("Type") == "Number":
        return _number_problem(name, spec, value)
    return None


def _number_problem(name: str, spec: Mapping[str, Any], value: str) -> str | None:
    """Why CloudFormation would refuse `value` for a Number parameter, None if it would not."""
    try:
        number = float(value)
    except ValueError:
        return f"{name}={value!r} is not a number"
    if "MinValue" in spec and number < float(spec["MinValue"]):
        return f"{name}={value} is below its minimum {spec['MinValue']}"
    if "MaxValue" in spec and number > float(spec["MaxValue"]):
        return f"{name}={value} is above its maximum {spec['MaxValue']}"
    return None


def resolve_parameters(
    template: Mapping[str, Any], overrides: Mapping[str, str], previous: Mapping[str, str], report: Report
) -> dict[str, str]:
    """Every parameter's value as `sam deploy` sends it: the override, else the stack's last value
    (UsePreviousValue), else the Default. An unknown or refused value is a problem of the report."""
    declared: dict[str, Any] = template.get("Parameters") or {}
    for name in sorted(set(overrides) - set(declared)):
        report.problem(
            f"{name} is not a parameter of template.yaml",
            "remove it from PARAMS or parameter_overrides (docs/configuration.md, Parameters, lists them)",
        )
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in overrides:
            value = overrides[name]
        elif name in previous:
            value = previous[name]
        else:
            value = str(spec.get("Default", ""))
        values[name] = value
        if name in _JUDGED_BY_THEIR_CHECK:
            continue
        if (refused := parameter_problem(name, spec, value)) is not None:
            report.problem(
                refused, f'deploy with PARAMS="{name}=<a valid value>" (docs/configuration.md, Parameters)'
            )
    return values


# ---------------------------------------------------------------------------------------------- checks


def _secret_ids(parameters: Mapping[str, str]) -> list[str]:
    """The secret parameters a deployment with these values reads."""
    names = ["KieApiKeySecretId", "KieWebhookHmacSecretId", "CallbackTokenSecretId"]
    if parameters.get("ForwardUrl"):
        names.append("ForwardHmacSecretId")
    return [name for name in names if parameters.get(name, "") not in OFF]


def check_callback_authentication(parameters: Mapping[str, str], report: Report) -> None:
    """Callbacks need an HMAC key or a token (with neither, every callback is refused: fail closed)."""
    if all(parameters.get(name, "") in OFF for name in ("KieWebhookHmacSecretId", "CallbackTokenSecretId")):
        report.problem(
            "KieWebhookHmacSecretId and CallbackTokenSecretId are both off: every callback would be refused",
            "name the secret of kie.ai's webhook HMAC key, or of a callback token (README, Deploy)",
        )


def check_secret(secrets: Any, parameter: str, secret_id: str, region: str, report: Report) -> None:
    """The secret exists in the region under that name, the functions may decrypt it, and (when the
    caller may read it) it holds a plain, non-empty string. Its value is never printed."""
    holds = SECRET_PARAMETERS[parameter]
    if secret_id.startswith("arn:"):
        name = secret_id.rsplit(":", 1)[-1].rsplit("-", 1)[0]
        report.problem(
            f"{parameter} is an ARN: the functions may read secret:<name>-?????? of the stack's region only",
            f"give the secret's name ({parameter}={name}), created in {region}",
        )
        return
    create = (
        f'aws secretsmanager create-secret --region {region} --name {secret_id} --secret-string "<{holds}>"'
    )
    try:
        described = secrets.describe_secret(SecretId=secret_id)
    except Exception as exc:
        if _error_code(exc) == "ResourceNotFoundException":
            report.problem(f"secret {secret_id} ({parameter}) does not exist in {region}", create)
        elif _denied(exc):
            report.unchecked.append(f"secret {secret_id} ({parameter}): you may not describe it")
        else:
            raise
        return
    if described.get("DeletedDate"):
        report.problem(
            f"secret {secret_id} ({parameter}) is scheduled for deletion",
            f"aws secretsmanager restore-secret --region {region} --secret-id {secret_id}",
        )
        return
    key = str(described.get("KmsKeyId") or "")
    if key and not key.endswith("alias/aws/secretsmanager"):
        report.problem(
            f"secret {secret_id} ({parameter}) is encrypted with KMS key {key}, which the functions may not use",
            f"aws secretsmanager update-secret --region {region} --secret-id {secret_id} "
            "--kms-key-id alias/aws/secretsmanager",
        )
    _check_secret_value(secrets, parameter, secret_id, region, report)


def _check_secret_value(secrets: Any, parameter: str, secret_id: str, region: str, report: Report) -> None:
    try:
        answer = secrets.get_secret_value(SecretId=secret_id)
    except Exception as exc:
        if not (_denied(exc) or _error_code(exc).startswith(("KMS", "Decryption"))):
            raise
        report.unchecked.append(f"secret {secret_id} ({parameter}): its value (you may not read it)")
        return
    value = answer.get("SecretString")
    if value is None:
        binary = answer.get("SecretBinary") or b""
        value = binary.decode("utf-8", "replace") if isinstance(binary, bytes) else str(binary)
    put = f'aws secretsmanager put-secret-value --region {region} --secret-id {secret_id} --secret-string "<{SECRET_PARAMETERS[parameter]}>"'
    if not value.strip():
        report.problem(f"secret {secret_id} ({parameter}) is empty", put)
        return
    try:
        shaped = json.loads(value)
    except ValueError:
        return
    if isinstance(shaped, dict | list):
        report.problem(
            f"secret {secret_id} ({parameter}) holds JSON (the console's key/value form); kie2s3 reads the "
            "whole value as the key",
            f"store the plain value: {put}",
        )


def check_bucket(s3: Any, parameters: Mapping[str, str], region: str, report: Report) -> None:
    """ExistingBucketName is a bucket of that region with what the parameters need of it."""
    bucket = parameters.get("ExistingBucketName", "")
    if not bucket:
        return
    try:
        answer = s3.head_bucket(Bucket=bucket)
        headers = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    except Exception as exc:
        code = _error_code(exc)
        if code in ("404", "NoSuchBucket", "NotFound"):
            report.problem(
                f"bucket {bucket} (ExistingBucketName) does not exist",
                f"create it (aws s3api create-bucket --bucket {bucket} --region {region} ...), or leave "
                "ExistingBucketName empty and the stack creates one",
            )
            return
        if not _denied(exc) and code != "301":
            raise
        headers = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPHeaders", {})
        if _denied(exc):
            report.unchecked.append(f"bucket {bucket} (ExistingBucketName): you may not read its settings")
            return
    located = headers.get("x-amz-bucket-region") or _location(s3, bucket)
    if located != region:
        report.problem(
            f"bucket {bucket} (ExistingBucketName) is in {located}, the stack deploys to {region}",
            f"deploy in its region (REGION={located}), or use a bucket of {region}",
        )
        return
    _check_object_lock(s3, bucket, parameters, report)
    _check_default_encryption(s3, bucket, parameters, report)


def _location(s3: Any, bucket: str) -> str:
    constraint = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    return _LOCATIONS.get(constraint, str(constraint))


def _check_object_lock(s3: Any, bucket: str, parameters: Mapping[str, str], report: Report) -> None:
    days = parameters.get("ObjectLockRetentionDays", "0")
    if days in ("", "0"):
        return
    status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if status != "Enabled":
        report.problem(
            f"bucket {bucket} has versioning {(status or 'off').lower()}; ObjectLockRetentionDays={days} "
            "needs versioning and Object Lock, which kie2s3 never changes on a bucket of yours",
            f"aws s3api put-bucket-versioning --bucket {bucket} --versioning-configuration Status=Enabled, "
            f"then put-object-lock-configuration (docs/account.md, Object Lock); or ObjectLockRetentionDays=0",
        )
        return
    try:
        lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    except Exception as exc:
        if _error_code(exc) != "ObjectLockConfigurationNotFoundError":
            raise
        lock = {}
    if lock.get("ObjectLockEnabled") != "Enabled":
        report.problem(
            f"bucket {bucket} has no Object Lock; ObjectLockRetentionDays={days} asks for it",
            f"aws s3api put-object-lock-configuration --bucket {bucket} --object-lock-configuration "
            f'\'{{"ObjectLockEnabled": "Enabled", "Rule": {{"DefaultRetention": '
            f'{{"Mode": "GOVERNANCE", "Days": {days}}}}}}}\'; or ObjectLockRetentionDays=0',
        )


def _check_default_encryption(s3: Any, bucket: str, parameters: Mapping[str, str], report: Report) -> None:
    """Without KmsKeyArn the bucket's default encryption applies: a KMS key of the account's own
    (not aws/s3) would refuse the functions, which may use KmsKeyArn's key only."""
    if parameters.get("KmsKeyArn"):
        return
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    except Exception as exc:
        if _error_code(exc) != "ServerSideEncryptionConfigurationNotFoundError":
            raise
        return
    for rule in rules:
        default = rule.get("ApplyServerSideEncryptionByDefault") or {}
        key = str(default.get("KMSMasterKeyID") or "")
        if str(default.get("SSEAlgorithm", "")).startswith("aws:kms") and key and "alias/aws/s3" not in key:
            report.problem(
                f"bucket {bucket} encrypts with KMS key {key} by default, which the functions may not use",
                "deploy with KmsKeyArn=<that key's ARN> (docs/account.md, Your KMS key)",
            )


def check_kms_key(kms: Any, parameters: Mapping[str, str], region: str, report: Report) -> None:
    """KmsKeyArn is an enabled symmetric encryption key of the stack's region (S3 uses only those)."""
    arn = parameters.get("KmsKeyArn", "")
    if not arn:
        return
    key_region = arn.split(":")[3] if arn.count(":") >= 5 else ""
    if key_region != region:
        report.problem(
            f"KMS key {arn} (KmsKeyArn) is in {key_region or 'no region'}, the stack deploys to {region}: "
            "S3 uses keys of the bucket's region only",
            f"use a key (or a multi-Region replica) of {region}, or deploy in {key_region} (REGION={key_region})",
        )
        return
    try:
        metadata = kms.describe_key(KeyId=arn)["KeyMetadata"]
    except Exception as exc:
        if _error_code(exc) == "NotFoundException":
            report.problem(
                f"KMS key {arn} (KmsKeyArn) does not exist",
                "give the ARN of a key of yours (aws kms list-keys)",
            )
        elif _denied(exc):
            report.unchecked.append(f"KMS key {arn} (KmsKeyArn): you may not describe it")
        else:
            raise
        return
    state = metadata.get("KeyState", "Enabled")
    if state != "Enabled":
        report.problem(
            f"KMS key {arn} (KmsKeyArn) is {state}", "enable it (aws kms enable-key) or give another"
        )
    if metadata.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT" or (
        metadata.get("KeyUsage", "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT"
    ):
        report.problem(
            f"KMS key {arn} (KmsKeyArn) is not a symmetric encryption key, the only kind S3 uses",
            "give a SYMMETRIC_DEFAULT key of usage ENCRYPT_DECRYPT",
        )


def check_forwarding(parameters: Mapping[str, str], report: Report) -> None:
    """ForwardUrl passes the forwarder's own rule (https, never kie2s3's callback route), and has a key."""
    from kie2s3.settings import forward_target_refusal

    url = parameters.get("ForwardUrl", "")
    if not url:
        return
    if (refused := forward_target_refusal(url, allow_local=False)) is not None:
        report.problem(
            f"ForwardUrl: {refused}",
            "give your own handler's https URL, or leave ForwardUrl empty (docs/forwarding.md)",
        )
    if parameters.get("ForwardHmacSecretId", "") in OFF:
        report.problem(
            "ForwardUrl is set without ForwardHmacSecretId (the key forwarded callbacks are signed with)",
            "create a secret (openssl rand -hex 32) and name it in ForwardHmacSecretId",
        )


# ---------------------------------------------------------------------------------------------- the run


def previous_parameters(cloudformation: Any, stack_name: str, report: Report) -> dict[str, str]:
    """The parameter values of the stack's last deployment ({} for a stack not deployed yet)."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except Exception as exc:
        if _error_code(exc) == "ValidationError":  # "Stack with id ... does not exist"
            return {}
        if _denied(exc):
            report.unchecked.append(f"stack {stack_name}'s current parameters: you may not describe it")
            return {}
        raise
    return {
        str(item["ParameterKey"]): str(item.get("ParameterValue", ""))
        for stack in stacks[:1]
        for item in stack.get("Parameters") or []
    }


def preflight(
    session: Any, template: Mapping[str, Any], stack_name: str, overrides: Mapping[str, str]
) -> tuple[Deployment, Report]:
    """Check a deployment of `template` as `stack_name` with these overrides, where `session` points."""
    from botocore.exceptions import BotoCoreError, ClientError

    region = str(session.region_name)
    try:
        account = str(session.client("sts").get_caller_identity()["Account"])
    except (BotoCoreError, ClientError) as exc:
        raise UserError(
            f"AWS credentials do not work in {region}: {exc}; fix: aws sso login, or check AWS_PROFILE "
            "and your keys",
            status=1,
        ) from exc
    report = Report()
    previous = previous_parameters(session.client("cloudformation"), stack_name, report)
    parameters = resolve_parameters(template, overrides, previous, report)
    deployment = Deployment(account=account, region=region, stack_name=stack_name, parameters=parameters)
    try:
        check_callback_authentication(parameters, report)
        check_forwarding(parameters, report)
        check_kms_key(session.client("kms"), parameters, region, report)
        check_bucket(session.client("s3"), parameters, region, report)
        secrets = session.client("secretsmanager")
        for name in _secret_ids(parameters):
            check_secret(secrets, name, parameters[name], region, report)
    except (BotoCoreError, ClientError) as exc:
        raise UserError(f"preflight could not finish in {region}: {exc}", status=1) from exc
    return deployment, report


def target_line(deployment: Deployment) -> str:
    """The line printed before a deploy: which stack, account and region it goes to."""
    return (
        f"stack {deployment.stack_name} in account {deployment.account}, region {deployment.region} "
        "(REGION=<region> or your AWS configuration's, STACK_NAME=<name> or the config file's)"
    )


def add_target_options(parser: argparse.ArgumentParser) -> None:
    """The options that say what to deploy and where, shared by preflight and the guided deploy."""
    parser.add_argument("--config-env", default=DEFAULT_CONFIG_ENV, help="environment of the SAM config file")
    parser.add_argument(
        "--config-file", help=f"SAM config file (default {LOCAL_CONFIG_FILE} if saved, else {CONFIG_FILE})"
    )
    parser.add_argument("--stack-name", help="default: the config file's stack_name")
    parser.add_argument("--region", help="default: your AWS configuration's region")
    parser.add_argument("--params", help='PARAMS: "Key=Value ..." (replaces the saved parameter_overrides)')


def stack_name_of(args: argparse.Namespace, settings: Mapping[str, Any]) -> str:
    """The stack a deploy with these options goes to."""
    name = args.stack_name or settings.get("stack_name")
    if not name:
        raise UserError(
            "no stack name: give STACK_NAME=<name>, or stack_name in the config file's environment"
        )
    return str(name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the checks and print the result; 1 when a problem remains."""
    parser = Parser(
        prog="devstack.preflight", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_target_options(parser)
    args = parser.parse_args(argv)
    settings = read_config(config_path(args.config_file), args.config_env, given=bool(args.config_file))
    stack_name = stack_name_of(args, settings)
    overrides = parse_overrides(
        args.params if args.params is not None else settings.get("parameter_overrides", "")
    )
    session = aws_session(f"make preflight (stack {stack_name})", region=args.region)
    return report_preflight(session, stack_name, overrides)


def report_preflight(session: Any, stack_name: str, overrides: Mapping[str, str]) -> int:
    """Run the checks, print the target, what was not checked and each problem; the exit status."""
    deployment, report = preflight(session, load_template(), stack_name, overrides)
    print(f"preflight: {target_line(deployment)}", flush=True)
    for line in report.unchecked:
        print(f"not checked: {line}", flush=True)
    for problem in report.problems:
        print(problem, file=sys.stderr, flush=True)
    if report.problems:
        count = len(report.problems)
        print(f"preflight: {count} problem{'s' if count > 1 else ''}, nothing deployed", file=sys.stderr)
        return 1
    print("preflight: ready to deploy", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
