"""`make delete`: sam delete runs for the stack in its region, then what the stack kept is named with
the commands that remove it (CloudFormation stubbed: its exact requests are the point)."""

from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from devstack import delete
from devstack.cli import UserError
from devstack.template import load_template
from tests.unit.test_deploy_commands import make_dry_run

SAM_STANDIN = """#!/bin/sh
printf '%s\\n' "$@" > "{record}"
exit {status}
"""


class _Session:
    """A session whose CloudFormation client is stubbed."""

    def __init__(self, region: str) -> None:
        self.region_name = region
        self.cloudformation = boto3.client(
            "cloudformation", region_name=region, aws_access_key_id="x", aws_secret_access_key="x"
        )
        self.stub = Stubber(self.cloudformation)

    def client(self, service: str) -> Any:
        assert service == "cloudformation"
        return self.cloudformation


def _resource(logical_id: str, kind: str, physical: str) -> dict[str, Any]:
    return {
        "LogicalResourceId": logical_id,
        "ResourceType": kind,
        "PhysicalResourceId": physical,
        "StackName": "kie2s3",
        "ResourceStatus": "CREATE_COMPLETE",
        "Timestamp": "2026-12-01T00:00:00Z",
    }


RESOURCES = [
    _resource("ArchiveBucket", "AWS::S3::Bucket", "kie2s3-archivebucket-abc"),
    _resource("TasksTable", "AWS::DynamoDB::Table", "kie2s3-TasksTable-XYZ"),
    _resource("IdempotencyTable", "AWS::DynamoDB::Table", "kie2s3-IdempotencyTable-Q"),
    _resource("CopyQueue", "AWS::SQS::Queue", "https://sqs.eu-west-1.amazonaws.com/1/kie2s3-CopyQueue"),
]


def _sam(tmp_path: Path, status: int = 0) -> tuple[Path, Path]:
    record = tmp_path / "sam-args"
    sam = tmp_path / "sam"
    sam.write_text(SAM_STANDIN.format(record=record, status=status))
    sam.chmod(0o755)
    return sam, record


def _expect_resources(session: _Session) -> None:
    session.stub.add_response(
        "describe_stack_resources", {"StackResources": RESOURCES}, {"StackName": "kie2s3"}
    )


def test_retained_are_the_stacks_resources_the_template_retains() -> None:
    kept = delete.retained(load_template(), RESOURCES)
    assert [(r.logical_id, r.name) for r in kept] == [
        ("ArchiveBucket", "kie2s3-archivebucket-abc"),
        ("TasksTable", "kie2s3-TasksTable-XYZ"),
    ]


def test_retained_leaves_out_a_bucket_the_stack_does_not_hold() -> None:
    # ExistingBucketName: the user's bucket is not the stack's, so it is neither deleted nor listed.
    kept = delete.retained(load_template(), RESOURCES[1:])
    assert [r.logical_id for r in kept] == ["TasksTable"]


def test_delete_runs_sam_delete_then_names_what_stayed(tmp_path: Path) -> None:
    sam, record = _sam(tmp_path)
    session = _Session("eu-west-1")
    _expect_resources(session)
    session.stub.add_client_error(
        "describe_stacks",
        "ValidationError",
        "Stack with id kie2s3 does not exist",
        400,
        {"StackName": "kie2s3"},
    )
    with session.stub:
        lines = delete.delete(session, "kie2s3", [str(sam)])
    assert record.read_text().split() == ["delete", "--stack-name", "kie2s3", "--region", "eu-west-1"]
    text = "\n".join(lines)
    assert "aws s3api delete-bucket --bucket kie2s3-archivebucket-abc --region eu-west-1" in text
    assert "aws dynamodb delete-table --table-name kie2s3-TasksTable-XYZ --region eu-west-1" in text
    assert "IdempotencyTable" not in text
    assert "CopyQueue" not in text


def test_delete_says_so_when_the_stack_is_still_there(tmp_path: Path) -> None:
    # sam delete asks first: answered "no", it exits 0 and the stack stays.
    sam, _ = _sam(tmp_path)
    session = _Session("eu-west-1")
    _expect_resources(session)
    session.stub.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "kie2s3",
                    "CreationTime": "2026-12-01T00:00:00Z",
                    "StackStatus": "UPDATE_COMPLETE",
                }
            ]
        },
        {"StackName": "kie2s3"},
    )
    with session.stub, pytest.raises(UserError, match="still there"):
        delete.delete(session, "kie2s3", [str(sam)])


def test_delete_stops_when_sam_delete_fails(tmp_path: Path) -> None:
    sam, _ = _sam(tmp_path, status=1)
    session = _Session("eu-west-1")
    _expect_resources(session)
    with session.stub, pytest.raises(UserError, match="sam delete failed"):
        delete.delete(session, "kie2s3", [str(sam)])


def test_delete_of_an_unknown_stack_is_one_line(tmp_path: Path) -> None:
    sam, record = _sam(tmp_path)
    session = _Session("eu-west-1")
    session.stub.add_client_error(
        "describe_stack_resources", "ValidationError", "Stack with id nope does not exist", 400
    )
    with session.stub, pytest.raises(UserError, match=r"stack nope in eu-west-1: .*does not exist"):
        delete.delete(session, "nope", [str(sam)])
    assert not record.exists()  # sam delete never ran


def test_make_delete_passes_the_stack_region_and_sam() -> None:
    [line] = [
        line
        for line in make_dry_run("delete", "STACK_NAME=kie2s3", "REGION=eu-west-1", "SAM=/x/sam")
        if "devstack.delete" in line
    ]
    assert line.endswith('-m devstack.delete --stack-name "kie2s3" --sam "/x/sam" --region "eu-west-1"')


def test_make_delete_without_region_uses_the_aws_configuration() -> None:
    [line] = [
        line
        for line in make_dry_run("delete", "STACK_NAME=kie2s3", "SAM=/x/sam")
        if "devstack.delete" in line
    ]
    assert line.endswith('-m devstack.delete --stack-name "kie2s3" --sam "/x/sam"')
