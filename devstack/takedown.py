"""`make takedown TASK=<id> STACK_NAME=<stack> [REGION=<region>] [BYPASS_GOVERNANCE=1]`: remove a task.

Marks the task taken down first (from then on no callback, `POST /copies`, reconciler pass or queued
copy job stores anything of it), waits for the copies opened before that to end (a Lambda timeout
at most; it says how long it waited), then deletes every version of the task's archived files (the
keys its ledger items hold, whatever the KeyTemplate), then, once the callbacks received before the
mark have ended (30 s after it: an S3 write cannot be fenced), of its raw callbacks
(`<ObjectPrefix><taskId>/callbacks/`), then its file items. The task's own item stays, marked taken
down, with the keys its files had: one run leaves nothing behind but what Object Lock keeps.

It runs with your AWS credentials, not the functions' (they hold no delete permission): you need
s3:ListBucketVersions and s3:DeleteObject / s3:DeleteObjectVersion on the bucket, dynamodb:Query,
GetItem, UpdateItem and BatchWriteItem on the tasks table, and dynamodb:BatchGetItem on the
idempotency table. Under Object Lock in
governance mode, the versions stay until their retention ends (a delete marker hides them from
GET and listings meanwhile) unless BYPASS_GOVERNANCE=1, which needs s3:BypassGovernanceRetention.
"""

import argparse
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from devstack.cli import Parser, UserError, aws_session, run


def copy_guard(dynamodb: Any, idempotency_table: str, tasks_table: str) -> Any:
    """The functions' idempotency guard over these tables (a boto3 DynamoDB client): what tells a
    takedown which copies are under way."""
    from kie2s3.adapters.idempotency import CopyGuard, DynamoDBCopyRecords

    return CopyGuard(DynamoDBCopyRecords(idempotency_table, dynamodb, tasks_table))


def takedown(
    s3: Any,
    tasks_table: Any,
    guard: Any,
    bucket: str,
    object_prefix: str,
    task_id: str,
    *,
    out: TextIO | None = None,
    bypass_governance: bool = False,
) -> int:
    """Take the task down in this bucket and tasks table (a boto3 S3 client and DynamoDB Table), its
    copies under way known from `guard` (copy_guard), and print what was removed; 0 when done. A
    task the ledger does not know yet is fenced all the same (its callbacks may still come)."""
    from kie2s3.adapters.ledger import Ledger
    from kie2s3.adapters.s3_store import S3Store
    from kie2s3.logic.takedown import take_down

    out = out or sys.stdout
    report = take_down(
        Ledger(tasks_table),
        S3Store(s3, bucket),
        guard,
        object_prefix,
        task_id,
        bypass_governance=bypass_governance,
    )
    if not report.known:
        print(
            f"task {task_id} was not recorded (yet): fenced, so that no later callback or copy records it",
            file=out,
        )
    print(f"task {task_id} taken down in s3://{bucket}", file=out)
    if report.waited_seconds >= 1:
        print(f"  waited {report.waited_seconds:.0f} s for copies and callbacks under way to end", file=out)
    for key in report.removed:
        print(f"  removed  {key}", file=out)
    for key, versions in report.locked.items():
        print(
            f"  locked   {key} ({versions} version(s) kept by Object Lock, hidden by a delete marker)",
            file=out,
        )
    print(
        f"  ledger items removed: {report.ledger_items} (the task's item stays, marked taken down)", file=out
    )
    if report.locked:
        print(
            "Object Lock keeps the versions above until their retention ends; in governance mode, run again"
            " with BYPASS_GOVERNANCE=1 (needs s3:BypassGovernanceRetention) to remove them now.",
            file=out,
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Take a task down in a deployed stack, named by its CloudFormation stack."""
    from botocore.exceptions import BotoCoreError, ClientError

    from kie2s3.errors import Kie2S3Error
    from kie2s3.models import TASK_ID_PATTERN

    parser = Parser(
        prog="devstack.takedown", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", required=True, help="the kie.ai task id")
    parser.add_argument("--stack-name", required=True)
    parser.add_argument("--region", help="the stack's region (default: the AWS configuration's)")
    parser.add_argument("--bypass-governance", action="store_true", help="lift governance-mode Object Lock")
    args = parser.parse_args(argv)
    if not TASK_ID_PATTERN.match(args.task):
        raise UserError(f"{args.task!r} is not a kie.ai task id")
    session = aws_session(f"make takedown STACK_NAME={args.stack_name}", region=args.region)
    try:
        stack = session.client("cloudformation").describe_stacks(StackName=args.stack_name)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
        table = session.resource("dynamodb").Table(outputs["TasksTableName"])
        guard = copy_guard(
            session.client("dynamodb"), outputs["IdempotencyTableName"], outputs["TasksTableName"]
        )
        return takedown(
            session.client("s3"),
            table,
            guard,
            outputs["BucketName"],
            parameters.get("ObjectPrefix", "kie/"),
            args.task,
            bypass_governance=args.bypass_governance,
        )
    except (BotoCoreError, ClientError) as exc:
        raise UserError(f"stack {args.stack_name} in {session.region_name}: {exc}", status=1) from exc
    except Kie2S3Error as exc:
        raise UserError(f"stack {args.stack_name}: {exc.reason}", status=1) from exc
    except KeyError as exc:
        raise UserError(
            f"stack {args.stack_name} has no output {exc}: is it a kie2s3 stack?", status=1
        ) from exc


if __name__ == "__main__":
    sys.exit(run(main))
