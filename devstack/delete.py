"""`make delete STACK_NAME=<stack> [REGION=<region>]`: `sam delete`, then what it kept and how to remove it.

The archive outlives the stack: the resources template.yaml marks `DeletionPolicy: Retain` (the
bucket the stack created, the tasks ledger) stay when the stack goes. Their names are read from the
stack before `sam delete` runs (it asks before deleting anything), and printed after it with the
commands that remove them — deliberately, one by one, never by this command.
"""

import argparse
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from devstack.cli import Parser, UserError, aws_session, run

# How to remove each kind of retained resource, by hand: {name} and {region} are filled in.
_REMOVAL: Final = {
    "AWS::S3::Bucket": (
        "the archive bucket {name}: every archived file and callback body",
        [
            "aws s3 rm s3://{name} --recursive --region {region}   # versioned (Object Lock): empty it in "
            "the S3 console instead; locked versions stay until their retention ends",
            "aws s3api delete-bucket --bucket {name} --region {region}",
        ],
    ),
    "AWS::DynamoDB::Table": (
        "the table {name}: the tasks ledger (what was copied where, with SHA-256s)",
        [
            "aws dynamodb create-backup --table-name {name} --backup-name {name}-final --region {region}"
            "   # optional: a backup outlives the table",
            "aws dynamodb delete-table --table-name {name} --region {region}",
        ],
    ),
}


@dataclass(frozen=True)
class Retained:
    """A resource the stack's deletion keeps: its logical id, type and name (physical id)."""

    logical_id: str
    type: str
    name: str


def retained(template: Mapping[str, Any], resources: Sequence[Mapping[str, Any]]) -> list[Retained]:
    """The stack's resources whose template definition says `DeletionPolicy: Retain`, in template order.

    `resources` are CloudFormation's `StackResources`; a retained resource the stack does not hold (the
    bucket, when ExistingBucketName names yours) is not listed.
    """
    physical = {r["LogicalResourceId"]: r for r in resources if r.get("PhysicalResourceId")}
    return [
        Retained(logical_id, physical[logical_id]["ResourceType"], physical[logical_id]["PhysicalResourceId"])
        for logical_id, resource in (template.get("Resources") or {}).items()
        if resource.get("DeletionPolicy") == "Retain" and logical_id in physical
    ]


def report(kept: Sequence[Retained], stack_name: str, region: str) -> list[str]:
    """What stayed, and the commands that remove each of it."""
    if not kept:
        return [f"stack {stack_name} deleted; it kept nothing"]
    lines = [f"stack {stack_name} deleted; kept, on purpose (DeletionPolicy: Retain in template.yaml):"]
    for resource in kept:
        what, commands = _REMOVAL.get(resource.type, (f"{resource.type} {{name}}", []))
        lines.append(f"  {what.format(name=resource.name)}")
        lines.extend(f"      {command.format(name=resource.name, region=region)}" for command in commands)
    lines.append(
        "a redeploy under the same stack name creates new ones beside them: they are not adopted back."
    )
    return lines


def _stack_exists(cloudformation: Any, stack_name: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return False
        raise
    return any(stack.get("StackStatus") != "DELETE_COMPLETE" for stack in stacks)


def delete(session: Any, stack_name: str, sam: Sequence[str]) -> list[str]:
    """Read the stack's retained resources, run `sam delete` (which asks first), report what stayed."""
    from botocore.exceptions import BotoCoreError, ClientError

    from devstack.template import load_template

    region = session.region_name
    cloudformation = session.client("cloudformation")
    try:
        resources = cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
    except (BotoCoreError, ClientError) as exc:
        raise UserError(f"stack {stack_name} in {region}: {exc}", status=1) from exc
    kept = retained(load_template(), resources)
    done = subprocess.run([*sam, "delete", "--stack-name", stack_name, "--region", region], check=False)
    if done.returncode != 0:
        raise UserError(
            f"sam delete failed (exit status {done.returncode}): the stack is as it was", status=1
        )
    try:
        still_there = _stack_exists(cloudformation, stack_name)
    except (BotoCoreError, ClientError) as exc:
        raise UserError(f"stack {stack_name} in {region}: {exc}", status=1) from exc
    if still_there:
        raise UserError(f"stack {stack_name} in {region} is still there: nothing was deleted", status=1)
    return report(kept, stack_name, region)


def main(argv: Sequence[str] | None = None) -> int:
    """Delete a deployed stack, then print what it kept."""
    parser = Parser(
        prog="devstack.delete", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack-name", required=True)
    parser.add_argument("--region", help="the stack's region (default: the AWS configuration's)")
    parser.add_argument("--sam", default="sam", help="the SAM CLI to run")
    args = parser.parse_args(argv)
    session = aws_session(f"make delete STACK_NAME={args.stack_name}", region=args.region)
    print("\n".join(delete(session, args.stack_name, [args.sam])))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
