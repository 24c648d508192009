"""`make logs STACK_NAME=…`: a deployed stack's function logs from CloudWatch Logs (the AWS emulator's),
the log groups found from the stack's resources (CloudFormation stubbed: its one request is the point)."""

import io
import json
import time
import uuid
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from devstack.logs import Selection, deployed_logs
from devstack.stack import Stack
from devstack.template import load_template


class _Stop(Exception):
    pass


def _resources(groups: dict[str, str]) -> list[dict[str, Any]]:
    listed = []
    for logical_id, physical in {
        "ApiFunction": "kie2s3-ApiFunction-1",
        "CopyWorkerFunction": "kie2s3-CopyWorkerFunction-2",
        **groups,
    }.items():
        listed.append(
            {
                "LogicalResourceId": logical_id,
                "PhysicalResourceId": physical,
                "ResourceType": "AWS::Logs::LogGroup"
                if logical_id.endswith("LogGroup")
                else "AWS::Lambda::Function",
                "StackName": "kie2s3",
                "ResourceStatus": "CREATE_COMPLETE",
                "Timestamp": "2026-12-01T00:00:00Z",
            }
        )
    return listed


def _record(function: str, message: str, **fields: object) -> str:
    return json.dumps(
        {"level": "INFO", "message": message, "service": "kie2s3", "function_name": function, **fields}
    )


@pytest.fixture
def deployed(stack: Stack) -> tuple[Any, Any, dict[str, str]]:
    """A stubbed CloudFormation naming two function log groups that exist in the emulated CloudWatch Logs."""
    logs = stack.client("logs")
    suffix = uuid.uuid4().hex[:8]
    groups = {
        "ApiFunctionLogGroup": f"kie2s3-Api-{suffix}",
        "CopyWorkerFunctionLogGroup": f"kie2s3-Copy-{suffix}",
    }
    for group in groups.values():
        logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName="2026/12/07/[$LATEST]abc")
    cloudformation = boto3.client(
        "cloudformation", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stub = Stubber(cloudformation)
    stub.add_response(
        "describe_stack_resources", {"StackResources": _resources(groups)}, {"StackName": "kie2s3"}
    )
    stub.activate()
    return cloudformation, logs, groups


def _put(logs: Any, group: str, message: str, at: float) -> None:
    logs.put_log_events(
        logGroupName=group,
        logStreamName="2026/12/07/[$LATEST]abc",
        logEvents=[{"timestamp": int(at * 1000), "message": message}],
    )


def test_deployed_logs_of_one_function_since_a_time_as_json(
    deployed: tuple[Any, Any, dict[str, str]],
) -> None:
    cloudformation, logs, groups = deployed
    now = time.time()
    _put(logs, groups["CopyWorkerFunctionLogGroup"], _record("w", "too old"), now - 3600)
    _put(
        logs,
        groups["CopyWorkerFunctionLogGroup"],
        _record("w", "file archived", key="kie/t/00.png"),
        now - 60,
    )
    _put(logs, groups["CopyWorkerFunctionLogGroup"], "START RequestId: 1 Version: $LATEST", now - 59)
    _put(logs, groups["ApiFunctionLogGroup"], _record("a", "callback accepted"), now - 30)
    out = io.StringIO()

    selection = Selection(function="copy-worker", since=now - 600, as_json=True)
    assert deployed_logs(cloudformation, logs, "kie2s3", load_template(), selection, out=out) == 0

    assert [json.loads(line)["message"] for line in out.getvalue().splitlines()] == ["file archived"]


def test_deployed_logs_follow_prints_each_event_once(deployed: tuple[Any, Any, dict[str, str]]) -> None:
    cloudformation, logs, groups = deployed
    now = time.time()
    _put(logs, groups["ApiFunctionLogGroup"], _record("a", "callback accepted"), now - 5)
    out = io.StringIO()
    polls = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 1:
            _put(logs, groups["CopyWorkerFunctionLogGroup"], _record("w", "file archived"), time.time())
        else:
            raise _Stop

    with pytest.raises(_Stop):
        deployed_logs(
            cloudformation, logs, "kie2s3", load_template(), Selection(), follow=True, out=out, sleep=sleep
        )
    printed = out.getvalue().splitlines()
    assert [line.split()[2:] for line in printed] == [
        ["api", "INFO", "callback", "accepted"],
        ["copy-worker", "INFO", "file", "archived"],
    ]


def test_deployed_logs_name_the_functions_a_stack_has(deployed: tuple[Any, Any, dict[str, str]]) -> None:
    from devstack.cli import UserError

    cloudformation, logs, _ = deployed
    with pytest.raises(UserError, match="FUNCTION=forward: stack kie2s3 has api, copy-worker"):
        deployed_logs(cloudformation, logs, "kie2s3", load_template(), Selection(function="forward"))
