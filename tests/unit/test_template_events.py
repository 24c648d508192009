"""The events' resources in template.yaml: the ledger's stream, the function that reads it, its
mapping's retries and failure destination, and IAM scoped to the bus, the stream and the queue."""

from typing import Any

import pytest
from devstack.template import function_environment, load_template
from tests.unit.test_template import PHYSICAL_IDS
from tests.unit.test_template_accounts import COMBINATIONS, deployed, listed, role_statements

BUS_ARN = "arn:aws:events:us-east-1:123456789012:event-bus/{}"
TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/tasks-table"
STREAM = "<TasksTable.StreamArn>"  # only CloudFormation knows the stream's label
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:events-dlq"  # PHYSICAL_IDS' EventsDeadLetterQueue


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_ledger_streams_new_and_old_images(template: dict[str, Any]) -> None:
    table = template["Resources"]["TasksTable"]["Properties"]
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_every_function_gets_the_bus_name(template: dict[str, Any]) -> None:
    for function in ("ApiFunction", "CopyWorkerFunction", "ReconcilerFunction", "EventsFunction"):
        assert function_environment(template, {}, PHYSICAL_IDS, function)["EVENT_BUS_NAME"] == "default"
        overridden = function_environment(template, {"EventBusName": "team-bus"}, PHYSICAL_IDS, function)
        assert overridden["EVENT_BUS_NAME"] == "team-bus"


def test_bus_name_must_be_a_name_not_an_arn(template: dict[str, Any]) -> None:
    import re

    pattern = re.compile(template["Parameters"]["EventBusName"]["AllowedPattern"])
    assert pattern.fullmatch("default")
    assert pattern.fullmatch("team.media-bus_1")
    for bad in (BUS_ARN.format("x"), "", "a b", "bus/other"):
        assert not pattern.fullmatch(bad), bad


@pytest.mark.parametrize("combination", ["defaults", "event-bus"])
def test_only_the_events_function_puts_events_and_only_on_the_bus(combination: str) -> None:
    resources = deployed(combination)
    bus = COMBINATIONS[combination].get("EventBusName", "default")
    for function in ("ApiFunction", "CopyWorkerFunction", "ReconcilerFunction", "EventsFunction"):
        putting = [
            s
            for s in role_statements(resources, function).values()
            if any(str(a).startswith("events:") for a in listed(s["Action"]))
        ]
        if function != "EventsFunction":
            assert putting == [], function
            continue
        assert putting == [
            {
                "Sid": "PutEvents",
                "Effect": "Allow",
                "Action": "events:PutEvents",
                "Resource": BUS_ARN.format(bus),
            }
        ]


def test_events_function_reads_the_ledger_and_its_stream_only() -> None:
    statements = role_statements(deployed("defaults"), "EventsFunction")
    actions = {a: listed(s["Resource"]) for s in statements.values() for a in listed(s["Action"])}
    assert actions == {
        "dynamodb:Query": [TABLE_ARN],
        "dynamodb:DescribeStream": [STREAM],
        "dynamodb:GetRecords": [STREAM],
        "dynamodb:GetShardIterator": [STREAM],
        "dynamodb:ListStreams": ["*"],  # it has no resource-level permissions
        "events:PutEvents": [BUS_ARN.format("default")],
        "sqs:SendMessage": [DLQ_ARN],
    }


def test_no_role_may_read_every_stream() -> None:
    # SAM's DynamoDB event attaches AWSLambdaDynamoDBExecutionRole (any stream, Resource "*"): the
    # mapping is declared on its own, with the stream read in the function's policy.
    for resource in deployed("defaults").values():
        if resource["Type"] == "AWS::IAM::Role":
            managed = [str(arn) for arn in resource["Properties"].get("ManagedPolicyArns", [])]
            assert not [arn for arn in managed if "DynamoDB" in arn], managed


def test_stream_mapping_retries_until_records_expire_bisects_and_keeps_what_expires() -> None:
    resources = deployed("defaults")
    mapping = resources["EventsStreamMapping"]["Properties"]
    assert mapping["FunctionName"] == "<EventsFunction>"
    assert mapping["EventSourceArn"] == STREAM
    assert mapping["StartingPosition"] == "TRIM_HORIZON"  # nothing the ledger holds is skipped
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    # Retried until the records expire from the stream (24 hours), never given up before: an event
    # the bus refuses for minutes of throttling is put once it takes it again (the outbox trims every
    # event to fit, so no record fails for good). The destination keeps the place of one that expires.
    assert mapping["MaximumRetryAttempts"] == -1
    assert mapping.get("MaximumRecordAgeInSeconds", -1) == -1
    destination = mapping["DestinationConfig"]["OnFailure"]["Destination"]
    dlq = resources["EventsDeadLetterQueue"]
    assert dlq["Type"] == "AWS::SQS::Queue"
    assert dlq["Properties"]["MessageRetentionPeriod"] == 1209600
    assert destination == DLQ_ARN
    send = role_statements(resources, "EventsFunction")["SendFailedBatches"]
    assert send["Action"] == "sqs:SendMessage"
    assert send["Resource"] == DLQ_ARN
