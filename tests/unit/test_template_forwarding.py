"""Forwarding in template.yaml (issue #17): its resources only with ForwardUrl, IAM scoped to its queue
and key, its alarms, and the parameter checks CloudFormation makes before deploying anything."""

import re
from typing import Any

import pytest
from devstack.template import DEFAULT_STACK_NAME, Resolver, TemplateError, load_template
from tests.unit.test_template_accounts import (
    CREATED,
    EXISTING,
    KEY_ARN,
    deployed,
    environment,
    listed,
    outputs,
    role_statements,
)

from kie2s3.retries import FORWARD_MAX_RECEIVE_COUNT

FORWARD_ONLY = {
    "ForwardFunction",
    "ForwardFunctionLogGroup",
    "ForwardFunctionRole",
    "ForwardFunctionForwardJobs",
}
FORWARD_ALARMS = {"ForwardDeadLetterQueueAlarm", "ForwardFailuresAlarm", "ForwardFunctionErrorsAlarm"}
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:forward-queue"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:kie2s3/forward-key-??????"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_forwarding_resources_exist_only_with_a_forward_url() -> None:
    off, on = deployed("defaults"), deployed("forwarding")
    assert not (FORWARD_ONLY | FORWARD_ALARMS) & set(off)
    assert set(on) >= (FORWARD_ONLY | FORWARD_ALARMS)
    # The queues are always there (idle, they cost nothing): every function's environment is the same.
    assert {"ForwardQueue", "ForwardDeadLetterQueue"} <= set(off)


def test_forward_function_is_the_one_entry_point_fed_by_the_forward_queue() -> None:
    resources = deployed("forwarding")
    function = resources["ForwardFunction"]["Properties"]
    api = resources["ApiFunction"]["Properties"]
    assert function["Handler"] == api["Handler"] == "app.lambda_handler"
    assert function["Code"] == api["Code"]
    assert function["Environment"] == api["Environment"]
    mapping = resources["ForwardFunctionForwardJobs"]["Properties"]
    assert mapping["EventSourceArn"] == QUEUE_ARN
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 1


def test_forward_queue_dead_letters_after_the_handlers_last_delivery(template: dict[str, Any]) -> None:
    queue = template["Resources"]["ForwardQueue"]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["ForwardDeadLetterQueue", "Arn"]},
        "maxReceiveCount": FORWARD_MAX_RECEIVE_COUNT,
    }
    timeout = template["Resources"]["ForwardFunction"]["Properties"]["Timeout"]
    assert queue["VisibilityTimeout"] >= 6 * timeout
    dlq = template["Resources"]["ForwardDeadLetterQueue"]["Properties"]
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600


@pytest.mark.parametrize("combination", ["forwarding", "forwarding-everything"])
def test_forward_function_may_only_read_the_archive_ledger_and_copy_records_pace_its_queue_and_read_its_key(
    combination: str,
) -> None:
    statements = role_statements(deployed(combination), "ForwardFunction")
    bucket, prefix = (
        (EXISTING, "media/kie/") if combination != "forwarding" else (CREATED["ArchiveBucket"], "kie/")
    )
    assert statements["ReadArchive"]["Action"] == "s3:GetObject"
    assert statements["ReadArchive"]["Resource"] == f"arn:aws:s3:::{bucket}/{prefix}*"
    assert listed(statements["ReadLedger"]["Action"]) == ["dynamodb:GetItem", "dynamodb:Query"]
    assert statements["ReadLedger"]["Resource"] == "arn:aws:dynamodb:us-east-1:123456789012:table/tasks-table"
    assert statements["PaceForwards"] == {
        "Sid": "PaceForwards",
        "Effect": "Allow",
        "Action": "sqs:ChangeMessageVisibility",
        "Resource": QUEUE_ARN,
    }
    assert statements["ReadForwardKey"]["Resource"] == SECRET
    assert statements["CopyRecordsRead"]["Action"] == "dynamodb:BatchGetItem"
    assert statements["CopyRecordsRead"]["Resource"].endswith(":table/idempotency-table")
    expected = {"ReadArchive", "ReadLedger", "PaceForwards", "ReadForwardKey", "CopyRecordsRead"}
    if combination == "forwarding-everything":
        assert statements["ArchiveKey"]["Action"] == "kms:Decrypt"
        assert statements["ArchiveKey"]["Resource"] == KEY_ARN
        expected.add("ArchiveKey")
    assert set(statements) == expected


def test_only_the_api_function_enqueues_forwards_and_only_when_forwarding() -> None:
    for combination in ("defaults", "forwarding"):
        resources = deployed(combination)
        senders = {
            function
            for function in ("ApiFunction", "CopyWorkerFunction", "ReconcilerFunction", "ForwardFunction")
            if function in resources
            for statement in role_statements(resources, function).values()
            if QUEUE_ARN in listed(statement["Resource"]) and "sqs:SendMessage" in listed(statement["Action"])
        }
        assert senders == ({"ApiFunction"} if combination == "forwarding" else set()), combination


def test_only_the_forward_function_reads_the_forwarding_key() -> None:
    resources = deployed("forwarding")
    readers = {
        name.removesuffix("Role")
        for name, resource in resources.items()
        if resource["Type"] == "AWS::IAM::Role"
        for policy in resource["Properties"].get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
        if SECRET in listed(statement["Resource"])
    }
    assert readers == {"ForwardFunction"}


def test_forwarding_settings_are_in_every_function_environment() -> None:
    for function in ("ApiFunction", "CopyWorkerFunction", "ReconcilerFunction", "ForwardFunction"):
        env = environment("forwarding", function)
        assert env["FORWARD_URL"] == "https://hooks.example.com/kie"
        assert env["FORWARD_HMAC_SECRET"] == "kie2s3/forward-key"
        assert env["FORWARD_QUEUE_URL"] == CREATED["ForwardQueue"]
    assert environment("defaults")["FORWARD_URL"] == ""


def test_forwarding_alarms_watch_the_dead_letters_the_failures_and_the_function() -> None:
    resources = deployed("forwarding")
    dlq = resources["ForwardDeadLetterQueueAlarm"]["Properties"]
    assert dlq["Dimensions"] == [{"Name": "QueueName", "Value": "forward-dlq"}]
    failures = resources["ForwardFailuresAlarm"]["Properties"]
    assert (failures["Namespace"], failures["MetricName"]) == ("kie2s3", "ForwardFailures")
    # As Powertools emits it: service=<stack name> (test_stack_metrics.py).
    assert failures["Dimensions"] == [{"Name": "service", "Value": DEFAULT_STACK_NAME}]
    assert (
        resources["ForwardFunctionErrorsAlarm"]["Properties"]["Dimensions"][0]["Value"] == "<ForwardFunction>"
    )
    for name in FORWARD_ALARMS:
        alarm = resources[name]["Properties"]
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_forwarding_outputs_its_dead_letter_queue_and_role() -> None:
    assert (
        outputs("forwarding")["ForwardDeadLetterQueueArn"] == "arn:aws:sqs:us-east-1:123456789012:forward-dlq"
    )
    assert outputs("forwarding")["FunctionRoleArns"].split(",")[-1] == "<ForwardFunctionRole.Arn>"
    assert "<ForwardFunctionRole.Arn>" not in outputs("defaults")["FunctionRoleArns"]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("", True),
        ("https://hooks.example.com/kie", True),
        ("https://hooks.example.com/kie?token=a%2Fb", True),
        ("http://127.0.0.1:9000/kie", False),  # the local stack sets FORWARD_URL itself
        ("http://hooks.example.com/kie", False),
        ("https://abc.execute-api.us-east-1.amazonaws.com/callbacks/kie", False),
        ("https://abc.execute-api.us-east-1.amazonaws.com/callbacks/kie/", False),
        ("https://api.example.com/prod/callbacks/kie?family=veo", False),
        ("https://user:pw@hooks.example.com/kie", False),
        ("ftp://hooks.example.com/kie", False),
        ("hooks.example.com/kie", False),
    ],
)
def test_forward_url_is_checked_at_deploy(template: dict[str, Any], url: str, allowed: bool) -> None:
    pattern = re.compile(template["Parameters"]["ForwardUrl"]["AllowedPattern"])
    assert bool(pattern.fullmatch(url)) is allowed


@pytest.mark.parametrize("key", ["", "none"])
def test_forward_url_without_a_key_is_refused_before_anything_is_created(
    template: dict[str, Any], key: str
) -> None:
    # CloudFormation's Rules, as the local stack checks them too (devstack.aws.provision).
    resolver = Resolver(template, {"ForwardUrl": "https://hooks.example.com/kie", "ForwardHmacSecretId": key})
    with pytest.raises(TemplateError, match=r"ForwardHmacSecretId .* is required when ForwardUrl is set"):
        resolver.check_rules()
    Resolver(template, {}).check_rules()
    Resolver(template, {"ForwardUrl": "https://h.example.com/k", "ForwardHmacSecretId": "k"}).check_rules()
