"""Fitting the account people already have (issue #16): each parameter combination, after SAM's transform.

The local stack enforces no IAM, KMS, dashboard or Object Lock: these tests are where they are held.
A combination is judged on what CloudFormation would create with those values: SAM's transform,
then every Condition evaluated and every intrinsic function resolved to a concrete value.
"""

import json
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
from devstack.template import (
    DEFAULT_STACK_NAME,
    NO_VALUE,
    REPO_ROOT,
    Resolver,
    TemplateError,
    function_environment,
    load_template,
)
from tests import docs
from tests.sam import in_sam_venv
from tests.unit.test_template import PHYSICAL_IDS, packaged_template

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
EXISTING = "team-media-archive"
FUNCTIONS = ("ApiFunction", "CopyWorkerFunction", "ReconcilerFunction")
CONFIGURATION_PAGE = "docs/configuration.md"  # the variables, every parameter, the key layout
# Physical names given to the created resources a combination's values resolve against.
CREATED = {**PHYSICAL_IDS, "ArchiveBucket": "kie2s3-archivebucket-1x2y3z"}

EVERYTHING = {
    "ExistingBucketName": EXISTING,
    "KmsKeyArn": KEY_ARN,
    "StorageClass": "INTELLIGENT_TIERING",
    "ObjectLockRetentionDays": "30",
    "ObjectPrefix": "media/kie/",
    "AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:kie2s3-alarms",
}
# Every combination the tests judge, transformed by SAM in one process (one transform takes a second).
COMBINATIONS: dict[str, dict[str, str]] = {
    "defaults": {},
    "existing-bucket": {"ExistingBucketName": EXISTING},
    "existing-bucket-prefix": {"ExistingBucketName": EXISTING, "ObjectPrefix": "media/kie/"},
    "kms-key": {"KmsKeyArn": KEY_ARN},
    "storage-class": {"StorageClass": "STANDARD_IA"},
    "object-lock": {"ObjectLockRetentionDays": "30"},
    "existing-bucket-object-lock": {"ExistingBucketName": EXISTING, "ObjectLockRetentionDays": "30"},
    "token-mode-empty": {"KieWebhookHmacSecretId": "", "CallbackTokenSecretId": "kie2s3/callback-token"},
    "token-mode": {"KieWebhookHmacSecretId": "none", "CallbackTokenSecretId": "kie2s3/callback-token"},
    "everything": EVERYTHING,
    # Issue 17: forwarding to the user's own handler, alone and with every account option.
    "forwarding": {
        "ForwardUrl": "https://hooks.example.com/kie",
        "ForwardHmacSecretId": "kie2s3/forward-key",
    },
    "forwarding-everything": {
        **EVERYTHING,
        "ForwardUrl": "https://hooks.example.com/kie?token=t",
        "ForwardHmacSecretId": "kie2s3/forward-key",
    },
    # Events on a bus of the user's instead of the default one.
    "event-bus": {"EventBusName": "team-bus"},
    # Items 4 and 9: a dated model layout, and the previous secret version never accepted.
    "key-template-rotation": {
        "KeyTemplate": "{prefix}{yyyy}/{mm}/{dd}/{model}/{taskId}/{index}{ext}",
        "SecretRotationWindowSeconds": "0",
    },
}
_SAM = """
import copy, json, sys
from cfnlint.api import lint
from cfnlint.config import ManualArgs
from samtranslator.translator.transform import transform

class NoManagedPolicyLookup:
    def load(self):
        return {}

template, combinations = json.load(sys.stdin)
found = {"transformed": {}}
for name, parameters in combinations.items():
    # transform() changes the template it is given.
    found["transformed"][name] = transform(copy.deepcopy(template), parameters, NoManagedPolicyLookup())
# SAM leaves the parameters to CloudFormation, so one transformed template serves every combination:
# one lint with every parameter set (a second each, one by one).
config = ManualArgs(regions=["us-east-1"], parameters=list(combinations.values()))
matches = lint(json.dumps(found["transformed"]["defaults"]), config=config)
found["lint"] = [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches]
json.dump(found, sys.stdout)
"""


@cache
def _sam() -> dict[str, Any]:
    """SAM's transform of every combination, and cfn-lint's findings with each combination's values."""
    found: dict[str, Any] = json.loads(in_sam_venv(_SAM, [packaged_template(), COMBINATIONS]))
    return found


def transformed(combination: str) -> dict[str, Any]:
    """The template after SAM's transform with a combination's values (a fresh copy each call)."""
    copied: dict[str, Any] = json.loads(json.dumps(_sam()["transformed"][combination]))
    return copied


class _Deployed(Resolver):
    """A resolver that also names what only CloudFormation knows (roles, functions, their ARNs)."""

    def ref(self, name: str) -> Any:
        try:
            return super().ref(name)
        except TemplateError:
            return f"<{name}>"

    def get_att(self, logical_id: str, attribute: str) -> str:
        try:
            return super().get_att(logical_id, attribute)
        except TemplateError:
            return f"<{logical_id}.{attribute}>"


def deployed(combination: str, stack_name: str = DEFAULT_STACK_NAME) -> dict[str, dict[str, Any]]:
    """The resources CloudFormation would create with a combination's values, every property resolved."""
    template = transformed(combination)
    resolver = _Deployed(template, COMBINATIONS[combination], CREATED, stack_name=stack_name)
    resources: dict[str, dict[str, Any]] = {}
    for name, resource in template["Resources"].items():
        if "Condition" in resource and not resolver.condition(resource["Condition"]):
            continue
        properties = resolver.resolve(resource.get("Properties") or {})
        resources[name] = {**resource, "Properties": {} if properties is NO_VALUE else properties}
    return resources


def outputs(combination: str) -> dict[str, Any]:
    template = transformed(combination)
    resolver = _Deployed(template, COMBINATIONS[combination], CREATED)
    return {
        name: resolver.resolve(output["Value"])
        for name, output in template["Outputs"].items()
        if "Condition" not in output or resolver.condition(output["Condition"])
    }


def role_statements(resources: dict[str, dict[str, Any]], function: str) -> dict[str, dict[str, Any]]:
    """The inline policy statements of a function's role, by Sid."""
    role = resources[f"{function}Role"]["Properties"]
    found = {}
    for policy in role.get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            found[statement.get("Sid", "")] = statement
    return found


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def s3_resources(resources: dict[str, dict[str, Any]]) -> set[str]:
    """Every S3 ARN any IAM statement of the template names."""
    arns: set[str] = set()
    for resource in resources.values():
        for policy in resource["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                arns |= {arn for arn in listed(statement["Resource"]) if str(arn).startswith("arn:aws:s3:")}
    return arns


def environment(
    combination: str, function: str = "ApiFunction", stack_name: str = DEFAULT_STACK_NAME
) -> dict[str, str]:
    """The function's environment as deployed: the transformed template's, resolved."""
    template = transformed(combination)
    variables = template["Resources"][function]["Properties"]["Environment"]["Variables"]
    resolver = _Deployed(template, COMBINATIONS[combination], CREATED, stack_name=stack_name)
    return {name: str(resolver.resolve(value)) for name, value in variables.items()}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


# ---------------------------------------------------------------------------- every parameter documented


def test_every_template_parameter_is_in_the_configuration_docs(template: dict[str, Any]) -> None:
    section = (REPO_ROOT / CONFIGURATION_PAGE).read_text()
    missing = [name for name in template["Parameters"] if f"`{name}`" not in section]
    assert missing == []


def test_every_new_variable_is_in_the_configuration_docs() -> None:
    section = (REPO_ROOT / CONFIGURATION_PAGE).read_text()
    for name in ("KMS_KEY_ARN", "STORAGE_CLASS"):
        assert f"| `{name}` |" in section, name


# ---------------------------------------------------------------------------- 1. bring your own bucket


def test_existing_bucket_creates_no_bucket_and_no_bucket_policy() -> None:
    resources = deployed("existing-bucket")
    assert not [r for r in resources.values() if r["Type"] in ("AWS::S3::Bucket", "AWS::S3::BucketPolicy")]
    default = deployed("defaults")
    assert {n for n, r in default.items() if r["Type"].startswith("AWS::S3::")} == {
        "ArchiveBucket",
        "ArchiveBucketPolicy",
    }


@pytest.mark.parametrize("function", FUNCTIONS)
def test_existing_bucket_is_the_bucket_every_function_uses(function: str) -> None:
    assert environment("existing-bucket", function)["BUCKET_NAME"] == EXISTING
    assert environment("defaults", function)["BUCKET_NAME"] == CREATED["ArchiveBucket"]


@pytest.mark.parametrize(
    ("combination", "bucket", "prefix"),
    [
        ("defaults", CREATED["ArchiveBucket"], "kie/"),
        ("existing-bucket", EXISTING, "kie/"),
        ("existing-bucket-prefix", EXISTING, "media/kie/"),
        ("everything", EXISTING, "media/kie/"),
    ],
)
def test_s3_permissions_name_only_the_bucket_and_the_prefix(
    combination: str, bucket: str, prefix: str
) -> None:
    # On a bucket others use too, kie2s3's functions may write only under its own prefix.
    assert s3_resources(deployed(combination)) == {
        f"arn:aws:s3:::{bucket}",
        f"arn:aws:s3:::{bucket}/{prefix}*",
    }


def test_existing_bucket_is_the_bucket_output() -> None:
    assert outputs("existing-bucket")["BucketName"] == EXISTING
    assert outputs("defaults")["BucketName"] == CREATED["ArchiveBucket"]


def test_only_the_reconciler_lists_and_aborts_stale_uploads() -> None:
    # An existing bucket may lack the abort-incomplete-multipart rule: the reconciler aborts kie2s3's.
    resources = deployed("existing-bucket")
    for function in FUNCTIONS:
        statements = role_statements(resources, function)
        listing = [s for s in statements.values() if "s3:ListBucketMultipartUploads" in listed(s["Action"])]
        if function == "ReconcilerFunction":
            [statement] = listing
            assert statement["Resource"] == f"arn:aws:s3:::{EXISTING}"
            assert "s3:AbortMultipartUpload" in listed(statements["ArchiveObjects"]["Action"])
        else:
            assert listing == [], function


def test_existing_bucket_name_is_validated_at_deploy(template: dict[str, Any]) -> None:
    pattern = re.compile(template["Parameters"]["ExistingBucketName"]["AllowedPattern"])
    for good in ("", "my-bucket", "a.b-c.1"):
        assert pattern.fullmatch(good), good
    for bad in ("arn:aws:s3:::my-bucket", "s3://my-bucket", "My_Bucket", "ab"):
        assert not pattern.fullmatch(bad), bad


# ---------------------------------------------------------------------------- 2. the user's KMS key


@pytest.mark.parametrize("function", FUNCTIONS)
def test_kms_key_gets_exactly_generate_data_key_and_decrypt(function: str) -> None:
    # The functions that write objects encrypt them (GenerateDataKey) and read or upload parts of
    # them (Decrypt); the reconciler only reads them (devstack/iam.py checks each against the calls).
    statements = role_statements(deployed("kms-key"), function)
    kms = [s for s in statements.values() if any(str(a).startswith("kms:") for a in listed(s["Action"]))]
    actions = "kms:Decrypt" if function == "ReconcilerFunction" else ["kms:GenerateDataKey", "kms:Decrypt"]
    assert kms == [{"Sid": "ArchiveKey", "Effect": "Allow", "Action": actions, "Resource": KEY_ARN}]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_kms_key_no_kms_permission(function: str) -> None:
    statements = role_statements(deployed("defaults"), function)
    assert not [s for s in statements.values() if any(str(a).startswith("kms:") for a in listed(s["Action"]))]


def test_kms_key_is_in_every_function_environment() -> None:
    for function in FUNCTIONS:
        assert environment("kms-key", function)["KMS_KEY_ARN"] == KEY_ARN
        assert environment("defaults", function)["KMS_KEY_ARN"] == ""


def test_kms_key_is_the_created_bucket_default_too() -> None:
    [rule] = deployed("kms-key")["ArchiveBucket"]["Properties"]["BucketEncryption"][
        "ServerSideEncryptionConfiguration"
    ]
    assert rule == {
        "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KEY_ARN},
        "BucketKeyEnabled": True,
    }
    [rule] = deployed("defaults")["ArchiveBucket"]["Properties"]["BucketEncryption"][
        "ServerSideEncryptionConfiguration"
    ]
    assert rule == {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}


def test_kms_key_must_be_a_key_arn(template: dict[str, Any]) -> None:
    # IAM names a key by its key ARN: an alias or a bare id would grant nothing.
    pattern = re.compile(template["Parameters"]["KmsKeyArn"]["AllowedPattern"])
    assert pattern.fullmatch("")
    assert pattern.fullmatch(KEY_ARN)
    assert pattern.fullmatch("arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/mrk-1234abcd")
    for bad in ("alias/kie2s3", "1234abcd-12ab-34cd-56ef-1234567890ab", "arn:aws:kms:us-east-1:123:alias/x"):
        assert not pattern.fullmatch(bad), bad


# ---------------------------------------------------------------------------- 3. storage class


def test_storage_class_is_in_every_function_environment(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["StorageClass"]
    assert parameter["Default"] == "STANDARD"
    assert parameter["AllowedValues"] == ["STANDARD", "INTELLIGENT_TIERING", "STANDARD_IA", "GLACIER_IR"]
    for function in FUNCTIONS:
        assert environment("storage-class", function)["STORAGE_CLASS"] == "STANDARD_IA"
        assert environment("defaults", function)["STORAGE_CLASS"] == "STANDARD"


def test_storage_class_outside_the_allowed_values_is_refused(template: dict[str, Any]) -> None:
    with pytest.raises(TemplateError, match="StorageClass"):
        function_environment(template, {"StorageClass": "DEEP_ARCHIVE"}, PHYSICAL_IDS)


# ---------------------------------------------------------------------------- 6. Object Lock


def test_object_lock_is_off_by_default() -> None:
    bucket = deployed("defaults")["ArchiveBucket"]["Properties"]
    assert "ObjectLockEnabled" not in bucket
    assert "ObjectLockConfiguration" not in bucket
    assert "VersioningConfiguration" not in bucket


def test_object_lock_versions_and_locks_the_created_bucket_in_governance_mode() -> None:
    bucket = deployed("object-lock")["ArchiveBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["ObjectLockEnabled"] is True
    assert bucket["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": "30"}},
    }


def test_object_lock_never_touches_an_existing_bucket() -> None:
    resources = deployed("existing-bucket-object-lock")
    assert not [r for r in resources.values() if r["Type"] == "AWS::S3::Bucket"]


def test_object_lock_grants_no_way_around_it() -> None:
    resources = deployed("object-lock")
    for function in FUNCTIONS:
        for statement in role_statements(resources, function).values():
            for action in listed(statement["Action"]):
                assert "Retention" not in action, (function, action)
                assert "LegalHold" not in action, (function, action)


# ---------------------------------------------------------------------------- 7. dashboard, alarms, outputs

NAMESPACE = "kie2s3"
_ADD_METRIC = re.compile(r"add_metric\(\s*name=\"(\w+)\"")


def emitted_metrics() -> set[str]:
    """Every metric name the code records (`metrics.add_metric(name="...")` in src/)."""
    names: set[str] = set()
    for path in (REPO_ROOT / "src").rglob("*.py"):
        names |= set(_ADD_METRIC.findall(path.read_text()))
    return names


def dashboard(combination: str = "defaults") -> dict[str, Any]:
    resources = deployed(combination)
    [board] = [r for r in resources.values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    body: dict[str, Any] = json.loads(board["Properties"]["DashboardBody"])
    return body


def dashboard_metrics(body: dict[str, Any]) -> Iterator[list[Any]]:
    """Every metric line of every metric widget, with the namespace and name carried down (`"..."`)."""
    for widget in body["widgets"]:
        if widget["type"] != "metric":
            continue
        previous: list[Any] = []
        for line in widget["properties"]["metrics"]:
            spelled = [item for item in line if not isinstance(item, dict)]
            full = [previous[i] if item == "..." else item for i, item in enumerate(spelled)]
            previous = full
            if line and isinstance(line[0], dict) and "expression" in line[0]:
                continue
            yield full


def test_emitted_metrics_are_found() -> None:
    assert {
        "FilesCopied",
        "BytesCopied",
        "CopyDuration",
        "CopyFailures",
        "CallbacksAccepted",
    } <= emitted_metrics()


def test_every_metric_the_code_emits_is_listed_in_the_architecture_docs() -> None:
    listed = docs.section("docs/architecture.md", "## Logs, traces and metrics")
    assert sorted(name for name in emitted_metrics() if f"`{name}`" not in listed) == []


def test_dashboard_names_only_metrics_the_code_emits() -> None:
    shown = {line[1] for line in dashboard_metrics(dashboard()) if line[0] == NAMESPACE}
    assert shown <= emitted_metrics(), shown - emitted_metrics()
    assert shown >= {
        "FilesCopied",
        "BytesCopied",
        "CopyDuration",
        "CopyFailures",
        "CallbacksAccepted",
        "CallbacksRejected",
        "CallbacksUnrecognised",
    }


def test_dashboard_shows_copy_duration_p50_and_p99() -> None:
    stats = set()
    for widget in dashboard()["widgets"]:
        for line in widget["properties"].get("metrics", []):
            if "CopyDuration" in line:
                options = line[-1] if isinstance(line[-1], dict) else {}
                stats.add(options.get("stat", widget["properties"].get("stat")))
    assert stats >= {"p50", "p99"}


def test_dashboard_watches_queues_and_every_function() -> None:
    lines = list(dashboard_metrics(dashboard()))
    queue = CREATED["CopyQueue"].rsplit("/", 1)[1]
    dlq = CREATED["CopyDeadLetterQueue"].rsplit("/", 1)[1]
    assert ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue] in lines
    assert ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", queue] in lines
    assert ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", dlq] in lines
    for function in FUNCTIONS:
        for metric in ("Errors", "Throttles", "ConcurrentExecutions"):
            assert ["AWS/Lambda", metric, "FunctionName", f"<{function}>"] in lines, (function, metric)


def test_dashboard_shows_failures_by_reason_from_the_logs() -> None:
    # CopyFailures carries no reason dimension: the reasons are in the `copy failed` log records.
    logs = [w for w in dashboard()["widgets"] if w["type"] == "log"]
    queries = " ".join(w["properties"]["query"] for w in logs)
    assert "copy failed" in queries
    assert "by reason" in queries


def test_dashboard_widgets_are_in_the_stack_region() -> None:
    for widget in dashboard()["widgets"]:
        if widget["type"] in ("metric", "log"):
            assert widget["properties"]["region"] == "us-east-1"


def test_function_roles_are_an_output_for_a_bucket_policy() -> None:
    # An existing bucket whose policy admits only listed principals needs the three roles' ARNs.
    assert outputs("existing-bucket")["FunctionRoleArns"] == ",".join(
        f"<{function}Role.Arn>" for function in FUNCTIONS
    )


def test_dead_letter_queue_arn_is_an_output() -> None:
    dlq = CREATED["CopyDeadLetterQueue"].rsplit("/", 1)[1]
    assert outputs("defaults")["DeadLetterQueueArn"] == f"arn:aws:sqs:us-east-1:123456789012:{dlq}"
    assert "DashboardName" in outputs("defaults")


# ---------------------------------------------------------------------------- 8. token mode


@pytest.mark.parametrize("combination", ["token-mode-empty", "token-mode"])
def test_hmac_secret_off_grants_no_read_of_it(combination: str) -> None:
    read = role_statements(deployed(combination), "ApiFunction")["ReadSecrets"]["Resource"]
    assert [arn.rsplit(":secret:", 1)[1] for arn in listed(read)] == [
        "kie2s3/kie-api-key-??????",
        "kie2s3/callback-token-??????",
    ]
    # The copy worker reads the API key only, whatever authenticates callbacks.
    read = role_statements(deployed(combination), "CopyWorkerFunction")["ReadApiKey"]["Resource"]
    assert [arn.rsplit(":secret:", 1)[1] for arn in listed(read)] == ["kie2s3/kie-api-key-??????"]


# ---------------------------------------------------------------------------- cfn-lint per combination


def test_transformed_template_is_cfn_lint_clean_with_every_combination() -> None:
    assert _sam()["lint"] == []


def test_sam_leaves_every_parameter_to_cloudformation() -> None:
    # Why one transformed template can stand for every combination in the lint above.
    assert all(transformed(name) == transformed("defaults") for name in COMBINATIONS)


@pytest.mark.parametrize("combination", ["defaults", "existing-bucket"])
def test_api_function_may_read_the_archived_objects_it_links(combination: str) -> None:
    # GET /tasks presigns a GET of each copied file with the API function's own credentials.
    statement = role_statements(deployed(combination), "ApiFunction")["ArchiveObjects"]
    assert "s3:GetObject" in listed(statement["Action"])
    assert listed(statement["Resource"]) == [f"arn:aws:s3:::{outputs(combination)['BucketName']}/kie/*"]
    assert environment(combination)["PRESIGNED_URL_TTL_SECONDS"] == "3600"
