"""template.yaml keeps the public contract (design.md) and its safety properties; devstack.template reads it."""

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from devstack.template import (
    DEFAULT_STACK_NAME,
    NO_VALUE,
    Resolver,
    TemplateError,
    function_environment,
    load_template,
)
from tests.sam import in_sam_venv

# design.md, "Public contract" -> "Environment".
CONTRACT_VARIABLES = {
    "BUCKET_NAME",
    "OBJECT_PREFIX",
    "TASKS_TABLE",
    "IDEMPOTENCY_TABLE",
    "COPY_MODE",
    "COPY_QUEUE_URL",
    "KIE_API_BASE_URL",
    "KIE_API_KEY_SECRET",
    "KIE_WEBHOOK_HMAC_SECRET",
    "CALLBACK_TOKEN_SECRET",
    "WEBHOOK_TOLERANCE_SECONDS",
    "ALLOWED_SOURCE_HOSTS",
    "ALLOW_LOCAL_SOURCES",
    "MAX_FILE_BYTES",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}

# IAM statements allowed to use Resource "*": (resource logical id, Sid) -> why AWS requires it.
# X-Ray, logs and the SQS poller come from AWS managed policies that SAM attaches.
WILDCARD_RESOURCE_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("EventsFunction", "ListLedgerStreams"): (
        "dynamodb:ListStreams has no resource-level permissions (Service Authorization Reference): "
        "only * allows it, and Lambda's stream mapping calls it with the function's role"
    ),
}

PHYSICAL_IDS = {
    "ArchiveBucket": "archive-bucket",
    "TasksTable": "tasks-table",
    "IdempotencyTable": "idempotency-table",
    "CopyQueue": "http://127.0.0.1:5000/123456789012/copy-queue",
    "CopyDeadLetterQueue": "http://127.0.0.1:5000/123456789012/copy-dlq",
    "ForwardQueue": "http://127.0.0.1:5000/123456789012/forward-queue",
    "ForwardDeadLetterQueue": "http://127.0.0.1:5000/123456789012/forward-dlq",
    "EventsDeadLetterQueue": "http://127.0.0.1:5000/123456789012/events-dlq",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def function_setting(template: dict[str, Any], function: dict[str, Any], key: str) -> Any:
    """A function property as SAM sees it: the function's own, else Globals.Function's."""
    return function["Properties"].get(key, template["Globals"]["Function"].get(key))


def http_events(template: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    routes = {}
    for function in functions(template).values():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi":
                routes[(event["Properties"]["Method"].upper(), event["Properties"]["Path"])] = event[
                    "Properties"
                ]
    return routes


def statements(node: Any, owner: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM statement in the template, with the logical id of the resource that holds it."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Statement" and isinstance(value, list):
                for statement in value:
                    if isinstance(statement, dict):
                        yield owner, statement
            else:
                yield from statements(value, owner)
    elif isinstance(node, list):
        for item in node:
            yield from statements(item, owner)


def test_load_template_converts_short_form_tags(template: dict[str, Any]) -> None:
    redrive = template["Resources"]["CopyQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["CopyDeadLetterQueue", "Arn"]}
    assert template["Globals"]["Function"]["Environment"]["Variables"]["BUCKET_NAME"] == {
        "Fn::If": ["CreateBucket", {"Ref": "ArchiveBucket"}, {"Ref": "ExistingBucketName"}]
    }
    assert type(template["Resources"]) is dict


def test_load_template_rejects_a_file_without_resources(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text("Description: nothing\n")
    with pytest.raises(TemplateError, match="no Resources"):
        load_template(path)


def test_template_is_a_sam_template(template: dict[str, Any]) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    assert template["Description"]


def test_functions_share_the_one_entry_point(template: dict[str, Any]) -> None:
    found = functions(template)
    assert set(found) == {
        "ApiFunction",
        "CopyWorkerFunction",
        "ReconcilerFunction",
        "ForwardFunction",
        "EventsFunction",
    }
    for function in found.values():
        assert function_setting(template, function, "CodeUri") == "src/handler/"
        assert function_setting(template, function, "Handler") == "app.lambda_handler"
        # The contract asks for both on each function itself, not only through Globals.
        assert function["Properties"]["CodeUri"] == "src/handler/"
        assert function["Properties"]["Handler"] == "app.lambda_handler"


def test_functions_run_python313_on_arm64_with_tracing(template: dict[str, Any]) -> None:
    for function in functions(template).values():
        assert function_setting(template, function, "Runtime") == "python3.13"
        assert function_setting(template, function, "Architectures") == ["arm64"]
        assert function_setting(template, function, "Tracing") == "Active"
        assert function_setting(template, function, "Layers") == [{"Ref": "DependenciesLayer"}]


def test_layer_builds_for_python313_arm64(template: dict[str, Any]) -> None:
    layer = template["Resources"]["DependenciesLayer"]
    assert layer["Properties"]["ContentUri"] == "layers/"
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"] == {"BuildMethod": "python3.13", "BuildArchitecture": "arm64"}


def test_environment_defines_every_contract_variable(template: dict[str, Any]) -> None:
    for name in functions(template):
        env = function_environment(template, {}, PHYSICAL_IDS, name)
        assert set(env) >= CONTRACT_VARIABLES, name


def test_environment_defaults_are_the_deployed_configuration(template: dict[str, Any]) -> None:
    env = function_environment(template, {}, PHYSICAL_IDS)
    assert env["BUCKET_NAME"] == "archive-bucket"
    assert env["TASKS_TABLE"] == "tasks-table"
    assert env["IDEMPOTENCY_TABLE"] == "idempotency-table"
    assert env["COPY_QUEUE_URL"] == PHYSICAL_IDS["CopyQueue"]
    assert env["COPY_MODE"] == "queue"
    assert env["KIE_API_BASE_URL"] == "https://api.kie.ai"
    assert env["OBJECT_PREFIX"] == "kie/"
    assert env["ALLOW_LOCAL_SOURCES"] == "false"
    assert env["MAX_FILE_BYTES"] == str(5 * 1024**3)
    assert env["WEBHOOK_TOLERANCE_SECONDS"] == "300"
    assert env["POWERTOOLS_SERVICE_NAME"] == DEFAULT_STACK_NAME  # the stack's name (test_stack_metrics.py)
    assert "tempfile.aiquickdraw.com" in env["ALLOWED_SOURCE_HOSTS"].split(",")


def test_function_environment_applies_overrides(template: dict[str, Any]) -> None:
    overrides = {"LogLevel": "DEBUG", "KieApiBaseUrl": "http://127.0.0.1:9"}
    env = function_environment(template, overrides, PHYSICAL_IDS, "CopyWorkerFunction")
    assert env["POWERTOOLS_LOG_LEVEL"] == "DEBUG"
    assert env["KIE_API_BASE_URL"] == "http://127.0.0.1:9"


@pytest.mark.parametrize("parameter", ["CopyMode", "AllowLocalSources"])
def test_local_only_settings_are_no_template_parameter(template: dict[str, Any], parameter: str) -> None:
    # No deployed stack can allow http or loopback sources, or copy inside the request.
    assert parameter not in template["Parameters"]
    for name in functions(template):
        env = function_environment(template, {}, PHYSICAL_IDS, name)
        assert (env["COPY_MODE"], env["ALLOW_LOCAL_SOURCES"]) == ("queue", "false"), name


def test_function_environment_rejects_a_value_outside_allowed_values(template: dict[str, Any]) -> None:
    with pytest.raises(TemplateError, match="LogLevel"):
        function_environment(template, {"LogLevel": "LOUD"}, PHYSICAL_IDS)


def test_function_environment_rejects_an_unknown_parameter(template: dict[str, Any]) -> None:
    with pytest.raises(TemplateError, match="CopyMood"):
        function_environment(template, {"CopyMood": "inline"}, PHYSICAL_IDS)


def test_function_environment_names_the_unresolvable_variable(template: dict[str, Any]) -> None:
    missing_bucket = {k: v for k, v in PHYSICAL_IDS.items() if k != "ArchiveBucket"}
    with pytest.raises(TemplateError, match="BUCKET_NAME"):
        function_environment(template, {}, missing_bucket)


def test_function_environment_resolves_sub_getatt_and_if() -> None:
    template = {
        "Parameters": {
            "Flag": {"Type": "String", "Default": "on"},
            "Name": {"Type": "String", "Default": "n"},
        },
        "Conditions": {
            "IsOn": {"Fn::Equals": [{"Ref": "Flag"}, "on"]},
            "IsOff": {"Fn::Not": [{"Condition": "IsOn"}]},
        },
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue"},
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "Environment": {
                        "Variables": {
                            "ARN": {"Fn::GetAtt": ["Queue", "Arn"]},
                            "SUB": {
                                "Fn::Sub": "${AWS::Partition}:${AWS::Region}:${AWS::AccountId}:${Name}:${Queue.QueueName}"
                            },
                            "LITERAL": {"Fn::Sub": "${!NotAVariable}"},
                            "CHOSEN": {
                                "Fn::If": ["IsOff", "no", {"Fn::Join": ["-", ["a", {"Ref": "Name"}]]}]
                            },
                            "DROPPED": {"Fn::If": ["IsOff", "x", {"Ref": "AWS::NoValue"}]},
                            "NUMBER": 5,
                        }
                    }
                },
            },
        },
    }
    env = function_environment(template, {}, {"Queue": "http://h/123456789012/q"}, "Fn")
    assert env == {
        "ARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "SUB": "aws:us-east-1:123456789012:n:q",
        "LITERAL": "${NotAVariable}",
        "CHOSEN": "a-n",
        "NUMBER": "5",
    }


def test_function_environment_rejects_a_non_function(template: dict[str, Any]) -> None:
    with pytest.raises(TemplateError, match="CopyQueue is not a function"):
        function_environment(template, {}, PHYSICAL_IDS, "CopyQueue")


def test_routes_exist_with_their_methods(template: dict[str, Any]) -> None:
    routes = http_events(template)
    assert set(routes) == {("POST", "/callbacks/kie"), ("POST", "/copies"), ("GET", "/tasks/{taskId}")}
    for event in routes.values():
        assert event["ApiId"] == {"Ref": "HttpApi"}
        assert event["PayloadFormatVersion"] == "2.0"


def test_routes_copies_and_tasks_require_iam(template: dict[str, Any]) -> None:
    routes = http_events(template)
    assert routes[("POST", "/copies")]["Auth"] == {"Authorizer": "AWS_IAM"}
    assert routes[("GET", "/tasks/{taskId}")]["Auth"] == {"Authorizer": "AWS_IAM"}


def test_routes_callback_has_no_authorizer(template: dict[str, Any]) -> None:
    # kie.ai cannot sign requests with SigV4: the function authenticates callbacks itself.
    auth = http_events(template)[("POST", "/callbacks/kie")].get("Auth", {})
    assert auth.get("Authorizer", "NONE") == "NONE"


def test_http_api_defaults_to_iam_and_logs_access(template: dict[str, Any]) -> None:
    api = template["Resources"]["HttpApi"]["Properties"]
    assert api["Auth"]["DefaultAuthorizer"] == "AWS_IAM"
    assert api["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["HttpApiAccessLogGroup", "Arn"]}


def test_api_function_fits_the_http_api_timeout(template: dict[str, Any]) -> None:
    assert template["Resources"]["ApiFunction"]["Properties"]["Timeout"] < 30


def test_queue_visibility_timeout_covers_six_worker_timeouts(template: dict[str, Any]) -> None:
    worker_timeout = template["Resources"]["CopyWorkerFunction"]["Properties"]["Timeout"]
    queue = template["Resources"]["CopyQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * worker_timeout


def test_queue_redrives_to_the_dead_letter_queue(template: dict[str, Any]) -> None:
    queue = template["Resources"]["CopyQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["CopyDeadLetterQueue", "Arn"]}
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_worker_reports_batch_item_failures(template: dict[str, Any]) -> None:
    events = template["Resources"]["CopyWorkerFunction"]["Properties"]["Events"]
    [sqs] = [event["Properties"] for event in events.values() if event["Type"] == "SQS"]
    assert sqs["Queue"] == {"Fn::GetAtt": ["CopyQueue", "Arn"]}
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert sqs["BatchSize"] == 1


def test_bucket_lifecycle_aborts_incomplete_multipart_uploads(template: dict[str, Any]) -> None:
    rules = template["Resources"]["ArchiveBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert {
        "Id": "AbortIncompleteMultipartUpload",
        "Status": "Enabled",
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
    } in rules


def test_bucket_blocks_public_access_and_is_retained(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["ArchiveBucket"]
    assert set(bucket["Properties"]["PublicAccessBlockConfiguration"].values()) == {True}
    assert bucket["DeletionPolicy"] == "Retain"


def test_bucket_policy_denies_insecure_transport(template: dict[str, Any]) -> None:
    [statement] = template["Resources"]["ArchiveBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_idempotency_table_has_ttl_on(template: dict[str, Any]) -> None:
    table = template["Resources"]["IdempotencyTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]


def test_tasks_table_has_pk_sk_and_point_in_time_recovery(template: dict[str, Any]) -> None:
    table = template["Resources"]["TasksTable"]["Properties"]
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_iam_statements_have_no_wildcard_resource(template: dict[str, Any]) -> None:
    found = 0
    for owner, resource in template["Resources"].items():
        for _, statement in statements(resource.get("Properties", {}), owner):
            found += 1
            resources = statement.get("Resource", [])
            resources = resources if isinstance(resources, list) else [resources]
            if "*" in resources:
                assert (owner, statement.get("Sid", "")) in WILDCARD_RESOURCE_EXCEPTIONS, (owner, statement)
    assert found > 0


def test_secret_permissions_are_scoped_to_the_configured_ids(template: dict[str, Any]) -> None:
    for name, function in functions(template).items():
        [policy] = function["Properties"]["Policies"]
        reads = [s for s in policy["Statement"] if s.get("Action") == "secretsmanager:GetSecretValue"]
        if name == "ForwardFunction":  # it signs with the forwarding key, and reads no other secret
            [read] = reads
            assert read["Resource"]["Fn::Sub"].endswith(":secret:${ForwardHmacSecretId}-??????")
            continue
        if name == "EventsFunction":  # it reads the ledger and puts events: no secret
            assert reads == []
            continue
        [read] = reads
        resources = read["Resource"] if isinstance(read["Resource"], list) else [read["Resource"]]
        assert "${KieApiKeySecretId}-??????" in resources[0]["Fn::Sub"], name
        conditions = [item["Fn::If"][0] for item in resources[1:]]
        # Only the API sees callbacks: the copy worker and the reconciler read only the API key.
        expected = ["HasWebhookHmacSecret", "HasCallbackTokenSecret"] if name == "ApiFunction" else []
        assert conditions == expected, name


def alarm_target(dimension_value: dict[str, Any]) -> str:
    """The logical id an alarm dimension points at (`Ref X` or `Fn::GetAtt [X, ...]`)."""
    value = dimension_value.get("Ref") or dimension_value["Fn::GetAtt"][0]
    return str(value)


def test_alarms_cover_errors_throttles_and_dead_letters(template: dict[str, Any]) -> None:
    alarms = [
        r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"
    ]
    watched = {
        (alarm["MetricName"], alarm_target(alarm["Dimensions"][0]["Value"]))
        for alarm in alarms
        if alarm["Namespace"] != "kie2s3"
    }
    own = {alarm["MetricName"] for alarm in alarms if alarm["Namespace"] == "kie2s3"}
    assert own == {"ForwardFailures"}
    assert watched == {
        ("Errors", "ApiFunction"),
        ("Throttles", "ApiFunction"),
        ("Errors", "CopyWorkerFunction"),
        ("Throttles", "CopyWorkerFunction"),
        ("Errors", "ReconcilerFunction"),
        ("ApproximateNumberOfMessagesVisible", "CopyDeadLetterQueue"),
        ("Errors", "ForwardFunction"),
        ("ApproximateNumberOfMessagesVisible", "ForwardDeadLetterQueue"),
        ("Errors", "EventsFunction"),
        ("IteratorAge", "EventsFunction"),
        ("ApproximateNumberOfMessagesVisible", "EventsDeadLetterQueue"),
    }
    for alarm in alarms:
        # The stream keeps a record 24 hours: an hour's lag is the alarm, well before any expires.
        assert alarm["Threshold"] == (3600 * 1000 if alarm["MetricName"] == "IteratorAge" else 0)
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["AlarmActions"] == {
            "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
        }


def test_outputs_name_what_users_and_e2e_tests_read(template: dict[str, Any]) -> None:
    assert set(template["Outputs"]) >= {
        "ApiUrl",
        "CallbackUrl",
        "BucketName",
        "CopyQueueUrl",
        "DeadLetterQueueUrl",
        "TasksTableName",
        "IdempotencyTableName",
        "ApiFunctionName",
        "CopyWorkerFunctionName",
    }
    assert template["Outputs"]["CallbackUrl"]["Value"]["Fn::Sub"].endswith("/callbacks/kie")


def test_copy_worker_knows_the_queue_max_receive_count(template: dict[str, Any]) -> None:
    from kie2s3.handlers.sqs import MAX_RECEIVE_COUNT

    redrive = template["Resources"]["CopyQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == MAX_RECEIVE_COUNT


def test_reconciler_runs_on_a_schedule_and_reads_the_open_items_index(template: dict[str, Any]) -> None:
    function = template["Resources"]["ReconcilerFunction"]["Properties"]
    [event] = function["Events"].values()
    assert event["Type"] == "ScheduleV2"
    assert event["Properties"]["ScheduleExpression"].startswith("rate(")
    table = template["Resources"]["TasksTable"]["Properties"]
    [index] = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "open-items"
    [policy] = function["Policies"]
    [open_items] = [s for s in policy["Statement"] if s.get("Sid") == "OpenItems"]
    assert open_items["Action"] == "dynamodb:Query"
    assert open_items["Resource"] == {"Fn::Sub": "${TasksTable.Arn}/index/open-items"}


# SAM's own transform (samtranslator ships with the SAM CLI in its own venv, see the Makefile's
# $(SAM)): what CloudFormation receives, so settings SAM moves onto generated resources are checked
# where they land. Managed policies are only ARNs here, never looked up.
SAM_TRANSFORM = """
import json, sys
from samtranslator.translator.transform import transform

class NoManagedPolicyLookup:
    def load(self):
        return {}

template, parameters = json.load(sys.stdin)
json.dump(transform(template, parameters, NoManagedPolicyLookup()), sys.stdout)
"""


def packaged_template() -> dict[str, Any]:
    """template.yaml as `sam package` hands it on: local code paths replaced by S3 URIs."""
    template = load_template()
    sections = [
        template["Globals"]["Function"],
        *(r.get("Properties", {}) for r in template["Resources"].values()),
    ]
    for properties in sections:
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = f"s3://kie2s3-artifacts/{properties[key]}"
    return template


@cache
def _sam_transformed(parameters: tuple[tuple[str, str], ...]) -> str:
    return in_sam_venv(SAM_TRANSFORM, [packaged_template(), dict(parameters)], timeout=120)


def sam_transform(parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """template.yaml after SAM's transform with these parameter values (a fresh copy each call)."""
    transformed: dict[str, Any] = json.loads(_sam_transformed(tuple(sorted((parameters or {}).items()))))
    return transformed


def test_sam_transform_gives_plain_cloudformation() -> None:
    transformed = sam_transform()
    assert "Transform" not in transformed
    assert not [r for r in transformed["Resources"].values() if r["Type"].startswith("AWS::Serverless::")]
    assert transformed["Resources"]["ApiFunction"]["Type"] == "AWS::Lambda::Function"


def test_http_api_stage_throttles_every_route_by_parameters() -> None:
    resources = sam_transform()["Resources"]
    [stage] = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Stage"]
    assert stage["ApiId"] == {"Ref": "HttpApi"}
    # The stage's default applies to each route, /callbacks/kie (open at the gateway) included;
    # no per-route setting may lift it.
    assert stage["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
    }
    assert "RouteSettings" not in stage


def test_http_api_throttle_defaults_are_finite_and_positive(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    for name in ("ApiThrottlingRateLimit", "ApiThrottlingBurstLimit"):
        assert parameters[name]["Type"] == "Number", name
        assert parameters[name]["MinValue"] >= 1, name
    assert parameters["ApiThrottlingRateLimit"]["Default"] == 50
    assert parameters["ApiThrottlingBurstLimit"]["Default"] == 100


def api_reserved_concurrency(parameters: dict[str, str]) -> Any:
    """The deployed ApiFunction's ReservedConcurrentExecutions, evaluated with these parameter values."""
    transformed = sam_transform(parameters)
    function = transformed["Resources"]["ApiFunction"]["Properties"]
    # SAM keeps the choice for deploy time: the property is the template's Fn::If, never a baked value.
    assert function["ReservedConcurrentExecutions"] == {
        "Fn::If": [
            "HasApiReservedConcurrency",
            {"Ref": "ApiReservedConcurrency"},
            {"Ref": "AWS::NoValue"},
        ]
    }
    return Resolver(transformed, parameters).resolve(function["ReservedConcurrentExecutions"])


def test_api_function_reserves_no_concurrency_by_default(template: dict[str, Any]) -> None:
    # A new account's quota of 10 leaves nothing to reserve: a default reservation fails the deploy.
    assert template["Parameters"]["ApiReservedConcurrency"]["Default"] == 0
    assert api_reserved_concurrency({}) is NO_VALUE
    assert api_reserved_concurrency({"ApiReservedConcurrency": "0"}) is NO_VALUE


def test_api_function_reserves_the_configured_concurrency() -> None:
    assert api_reserved_concurrency({"ApiReservedConcurrency": "25"}) == "25"


def test_only_the_api_function_may_reserve_concurrency() -> None:
    resources = sam_transform({"ApiReservedConcurrency": "25"})["Resources"]
    reserving = {
        name
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Lambda::Function"
        and "ReservedConcurrentExecutions" in resource["Properties"]
    }
    assert reserving == {"ApiFunction"}


def _grants(function: dict[str, Any], action: str) -> list[Any]:
    """The resources of each of the function's own statements that allow `action`."""
    granted = []
    for _, statement in statements(function["Properties"]["Policies"]):
        actions = statement.get("Action", [])
        if action in ([actions] if isinstance(actions, str) else actions):
            granted.append(statement["Resource"])
    return granted


def test_status_reads_copy_records_where_status_documents_are_built(template: dict[str, Any]) -> None:
    # A status document (callbacks, POST /copies, GET /tasks, a forwarded callback's `kie2s3`) shows
    # a copy under way from its idempotency record: one BatchGetItem on that table, in the functions
    # that build status documents only (the API, the forwarder).
    for name, function in functions(template).items():
        events = function["Properties"].get("Events", {}).values()
        builds_status = name == "ForwardFunction" or any(e["Type"] == "HttpApi" for e in events)
        expected = [{"Fn::GetAtt": ["IdempotencyTable", "Arn"]}] if builds_status else []
        assert _grants(function, "dynamodb:BatchGetItem") == expected, name
