"""devstack.iam: the policy evaluator on IAM's documented cases, the table of each call's actions, the
recorder's routing of events to the template's functions."""

from typing import Any

import pytest
from devstack.aws_calls import deployed_function
from devstack.iam import (
    MANAGED_POLICIES,
    OPERATIONS,
    SAR,
    Recording,
    Request,
    check,
    evaluate,
    local_only,
    reference_action,
    requests_of,
    stack_values,
)
from devstack.lambda_runtime import http_event, sqs_event
from devstack.template import TemplateError
from tests.unit.test_template import sam_transform

BUCKET_POLICY = [  # template.yaml's ArchiveBucketPolicy
    {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": ["arn:aws:s3:::archive", "arn:aws:s3:::archive/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
]
OBJECTS = {
    "Effect": "Allow",
    "Action": ["s3:GetObject", "s3:PutObject"],
    "Resource": "arn:aws:s3:::archive/kie/*",
}


def _request(action: str, resource: str, **context: str) -> Request:
    return Request(action, resource, context or {"aws:SecureTransport": "true"})


# ------------------------------------------------------------------ evaluation (IAM User Guide, reference_policies_evaluation-logic)


def test_an_allow_whose_action_and_resource_match_allows() -> None:
    assert evaluate([OBJECTS], _request("s3:GetObject", "arn:aws:s3:::archive/kie/t1/00.png")) == "Allow"


def test_nothing_allows_by_default() -> None:
    assert (
        evaluate([OBJECTS], _request("s3:DeleteObject", "arn:aws:s3:::archive/kie/t1/00.png"))
        == "ImplicitDeny"
    )
    assert evaluate([], _request("s3:GetObject", "arn:aws:s3:::archive/kie/t1/00.png")) == "ImplicitDeny"


def test_resource_wildcard_spans_slashes_but_not_a_prefix_outside_it() -> None:
    assert evaluate([OBJECTS], _request("s3:PutObject", "arn:aws:s3:::archive/kie/a/b/c.mp4")) == "Allow"
    assert evaluate([OBJECTS], _request("s3:PutObject", "arn:aws:s3:::archive/other/c.mp4")) == "ImplicitDeny"
    # The bucket is not an object of it: s3:ListBucket on the bucket needs the bucket's own ARN.
    assert evaluate([OBJECTS], _request("s3:GetObject", "arn:aws:s3:::archive")) == "ImplicitDeny"


def test_actions_match_case_insensitively_resources_case_sensitively() -> None:
    assert evaluate([OBJECTS], _request("S3:getobject", "arn:aws:s3:::archive/kie/x")) == "Allow"
    assert evaluate([OBJECTS], _request("s3:GetObject", "arn:aws:s3:::Archive/kie/x")) == "ImplicitDeny"


def test_action_wildcards() -> None:
    statement = {"Effect": "Allow", "Action": "dynamodb:Get*", "Resource": "*"}
    assert (
        evaluate([statement], _request("dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:1:table/t")) == "Allow"
    )
    assert (
        evaluate([statement], _request("dynamodb:PutItem", "arn:aws:dynamodb:us-east-1:1:table/t"))
        == "ImplicitDeny"
    )


def test_question_mark_is_one_character_as_secrets_managers_suffix_needs() -> None:
    # Secrets Manager, auth-and-access_resource-policies: "-??????" matches the 6 random characters only.
    statement = {
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": "arn:aws:secretsmanager:us-east-1:1:secret:kie-??????",
    }
    assert (
        evaluate(
            [statement],
            _request("secretsmanager:GetSecretValue", "arn:aws:secretsmanager:us-east-1:1:secret:kie-AbCdEf"),
        )
        == "Allow"
    )
    assert (
        evaluate(
            [statement],
            _request(
                "secretsmanager:GetSecretValue", "arn:aws:secretsmanager:us-east-1:1:secret:kie-old-AbCdEf"
            ),
        )
        == "ImplicitDeny"
    )


def test_an_explicit_deny_wins_over_an_allow() -> None:
    insecure = _request("s3:GetObject", "arn:aws:s3:::archive/kie/x", **{"aws:SecureTransport": "false"})
    assert evaluate([OBJECTS], insecure, BUCKET_POLICY) == "Deny"
    assert (
        evaluate([OBJECTS], _request("s3:GetObject", "arn:aws:s3:::archive/kie/x"), BUCKET_POLICY) == "Allow"
    )


def test_a_condition_key_absent_from_the_request_does_not_match_unless_if_exists() -> None:
    absent = Request("s3:GetObject", "arn:aws:s3:::archive/kie/x", {})
    assert evaluate([OBJECTS], absent, BUCKET_POLICY) == "Allow"  # the deny's condition cannot match
    deny_if_exists = {**BUCKET_POLICY[0], "Condition": {"BoolIfExists": {"aws:SecureTransport": "false"}}}
    assert evaluate([OBJECTS], absent, [deny_if_exists]) == "Deny"


def test_not_action_allows_everything_else() -> None:
    statement = {"Effect": "Allow", "NotAction": "s3:DeleteObject", "Resource": "*"}
    assert evaluate([statement], _request("s3:GetObject", "arn:aws:s3:::a/b")) == "Allow"
    assert evaluate([statement], _request("s3:DeleteObject", "arn:aws:s3:::a/b")) == "ImplicitDeny"


def test_an_operator_the_evaluator_does_not_know_is_an_error() -> None:
    statement = {**OBJECTS, "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}
    with pytest.raises(TemplateError, match="IpAddress"):
        evaluate([statement], _request("s3:GetObject", "arn:aws:s3:::archive/kie/x"))


# ------------------------------------------------------------------ the table of actions


_SAR_RESOURCE_TYPES = {
    "object": "object",
    "bucket": "bucket",
    "table": "table",
    "tables": "table",
    "stream": "stream",
    "queue": "queue",
    "secret": "Secret",
    "buses": "event-bus",
    "log-stream": "log-stream",
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS), ids=lambda o: f"{o[0]}:{o[1]}")
def test_each_action_of_the_table_is_the_references_on_its_resource_type(operation: tuple[str, str]) -> None:
    for action, kind in OPERATIONS[operation].actions:
        entry = reference_action(action)
        assert entry is not None, f"{action} is not in the Service Authorization Reference"
        types = {t for t in entry["resource_types"] if t}
        if kind == "*":
            assert types == set(), f"{action} is authorised on {types}, not only on *"
        else:
            assert _SAR_RESOURCE_TYPES[kind] in types, (action, types)


def _call(service: str, operation: str, **params: Any) -> dict[str, Any]:
    return {"service": service, "operation": operation, "params": params}


def _actions(call: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((r.action, r.resource) for r, _ in requests_of(call))


OBJECT = {"Bucket": "archive", "Key": "kie/t1/00.png"}
OBJECT_ARN = "arn:aws:s3:::archive/kie/t1/00.png"
KEY = "arn:aws:kms:us-east-1:123456789012:key/k1"


def test_a_tagged_put_also_needs_put_object_tagging() -> None:
    assert _actions(_call("s3", "PutObject", **OBJECT, Tagging=True)) == [
        ("s3:PutObject", OBJECT_ARN),
        ("s3:PutObjectTagging", OBJECT_ARN),
    ]


def test_multipart_operations_are_put_object_and_sse_kms_adds_the_key() -> None:
    assert _actions(_call("s3", "CreateMultipartUpload", **OBJECT, SSEKMSKeyId=KEY)) == [
        ("kms:GenerateDataKey", KEY),
        ("s3:PutObject", OBJECT_ARN),
    ]
    assert _actions(_call("s3", "UploadPart", **OBJECT, StoredWithKmsKey=KEY)) == [
        ("kms:Decrypt", KEY),
        ("s3:PutObject", OBJECT_ARN),
    ]
    assert _actions(_call("s3", "ListParts", **OBJECT)) == [("s3:ListMultipartUploadParts", OBJECT_ARN)]


def test_head_object_is_get_object_and_a_404_needs_list_bucket() -> None:
    assert _actions(_call("s3", "HeadObject", **OBJECT)) == [("s3:GetObject", OBJECT_ARN)]
    assert _actions(_call("s3", "HeadObject", **OBJECT, Missing=True)) == [
        ("s3:GetObject", OBJECT_ARN),
        ("s3:ListBucket", "arn:aws:s3:::archive"),
    ]


def test_a_presigned_get_is_the_signers_get_object() -> None:
    assert _actions(_call("s3", "GetObject", **OBJECT, Presigned=True)) == [("s3:GetObject", OBJECT_ARN)]


def test_a_query_on_an_index_is_checked_on_the_index() -> None:
    assert _actions(_call("dynamodb", "Query", TableName="tasks", IndexName="open-items")) == [
        ("dynamodb:Query", "arn:aws:dynamodb:us-east-1:123456789012:table/tasks/index/open-items")
    ]


def test_a_transaction_is_checked_item_by_item() -> None:
    items = [("ConditionCheck", "tasks"), ("Put", "idem"), ("Update", "tasks")]
    assert _actions(_call("dynamodb", "TransactWriteItems", Items=items)) == [
        ("dynamodb:ConditionCheckItem", "arn:aws:dynamodb:us-east-1:123456789012:table/tasks"),
        ("dynamodb:PutItem", "arn:aws:dynamodb:us-east-1:123456789012:table/idem"),
        ("dynamodb:UpdateItem", "arn:aws:dynamodb:us-east-1:123456789012:table/tasks"),
    ]


def test_an_operation_missing_from_the_table_is_named() -> None:
    with pytest.raises(KeyError, match="s3 RestoreObject"):
        requests_of(_call("s3", "RestoreObject", **OBJECT))


def test_every_table_entry_names_its_source() -> None:
    # An operation whose action has its own name comes from the reference; the others from the
    # documented extras (S3's multipart, HeadObject and ListParts; DynamoDB's transactions).
    for (_, name), rule in OPERATIONS.items():
        assert rule.source, name
        if rule.actions and rule.actions[0][0].split(":")[1] == name:
            assert SAR in rule.source, name


def test_every_managed_policy_sam_attaches_is_vendored_with_its_version() -> None:
    attached = {
        arn["Fn::Sub"].rsplit("/", 1)[-1] if isinstance(arn, dict) else arn.rsplit("/", 1)[-1]
        for resource in sam_transform({"ForwardUrl": "https://example.com/h", "ForwardHmacSecretId": "f"})[
            "Resources"
        ].values()
        if resource["Type"] == "AWS::IAM::Role"
        for arn in resource["Properties"].get("ManagedPolicyArns", [])
    }
    assert attached <= set(MANAGED_POLICIES)
    assert all(policy["version"] for policy in MANAGED_POLICIES.values())


# ------------------------------------------------------------------ routing: which function's role makes the call


def test_events_reach_the_function_the_template_routes_them_to() -> None:
    env = {
        "COPY_QUEUE_URL": "http://h/123456789012/copy-q",
        "FORWARD_QUEUE_URL": "http://h/123456789012/fwd-q",
    }
    assert deployed_function(http_event("GET", "/tasks/t1"), env) == "ApiFunction"
    assert (
        deployed_function(
            sqs_event([], "arn:aws:sqs:us-east-1:123456789012:copy-q")
            | {
                "Records": [
                    {"eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:copy-q"}
                ]
            },
            env,
        )
        == "CopyWorkerFunction"
    )
    assert (
        deployed_function(
            {
                "Records": [
                    {"eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:fwd-q"}
                ]
            },
            env,
        )
        == "ForwardFunction"
    )
    assert deployed_function({"Records": [{"eventSource": "aws:dynamodb"}]}, env) == "EventsFunction"
    assert deployed_function({"kie2s3": "reconcile"}, env) == "ReconcilerFunction"


# ------------------------------------------------------------------ the check on a recording


def _role_template(actions: list[str]) -> dict[str, Any]:
    """A transformed template of one function whose role allows `actions` under kie/ of bucket b."""
    statement = {"Sid": "Archive", "Effect": "Allow", "Action": actions, "Resource": "arn:aws:s3:::b/kie/*"}
    return {
        "Resources": {
            "F": {"Type": "AWS::Lambda::Function", "Properties": {"Role": {"Fn::GetAtt": ["FRole", "Arn"]}}},
            "FRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": [statement]}}]
                },
            },
        }
    }


def _recording(*keys: str, env: dict[str, str] | None = None) -> Recording:
    config = {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "TASKS_TABLE": "t", **(env or {})}
    return Recording(
        stacks=[{"endpoint": "http://127.0.0.1:1", "parameters": {}, "physical_ids": {"TasksTable": "t"}}],
        configs={"c": config},
        calls=[
            {
                "config": "c",
                "function": "F",
                "origin": "code",
                "service": "s3",
                "operation": "PutObject",
                "params": {"Bucket": "b", "Key": key},
            }
            for key in keys
        ],
    )


def test_the_check_names_a_call_its_role_refuses_in_one_line() -> None:
    report = check(_recording("kie/t1/00.png", "other/00.png"), _role_template(["s3:PutObject"]), [({}, {})])
    assert report.denied == [
        "F s3:PutObject needs s3:PutObject on arn:aws:s3:::b/other/00.png: not allowed by its role"
    ]
    assert report.unused == []


def test_the_check_names_a_grant_no_call_used_unless_listed() -> None:
    template = _role_template(["s3:PutObject", "s3:GetObject"])
    report = check(_recording("kie/t1/00.png"), template, [({}, {})])
    assert report.unused == [
        "F Archive s3:GetObject on arn:aws:s3:::b/kie/*: granted, no recorded call used it"
    ]
    listed = {("F", "Archive", "s3:GetObject"): "a fault path"}
    assert check(_recording("kie/t1/00.png"), template, [({}, {})], listed).unused == []


def test_calls_of_an_environment_no_deployment_has_are_not_judged() -> None:
    assert local_only({"COPY_MODE": "inline", "ALLOW_LOCAL_SOURCES": "true"}) == ["COPY_MODE=inline"]
    assert local_only({"COPY_MODE": "queue", "ALLOW_LOCAL_SOURCES": "true"}) == []
    report = check(
        _recording("other/00.png", env={"COPY_MODE": "inline"}), _role_template(["s3:PutObject"]), []
    )
    assert (report.denied, report.local_only) == ([], 1)


def test_a_variation_of_the_environment_is_the_stack_deployed_with_it() -> None:
    recording = _recording(
        "kie/t1/00.png", env={"KMS_KEY_ARN": KEY, "FORWARD_QUEUE_URL": "http://h/1/fwd-gone"}
    )
    parameters, physical_ids = stack_values(recording, "c")
    assert parameters["KmsKeyArn"] == KEY
    assert physical_ids["ForwardQueue"] == "http://h/1/fwd-gone"
