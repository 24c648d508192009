"""`make redrive`: move the copy jobs waiting in the dead-letter queue back to the copy queue.

Deployed stacks: `make redrive STACK_NAME=<name> [REGION=<region>]` reads the queue URLs from the
stack's outputs (needs AWS credentials; without REGION, the AWS configuration's region). The same
move in the AWS CLI, for a deployed stack (its `DeadLetterQueueArn` output):
    aws sqs start-message-move-task --source-arn <DeadLetterQueueArn>
Local: `redrive(sqs, dlq_url, queue_url)` against the emulated SQS (what the tests use).
"""

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from devstack.cli import Parser, UserError, aws_session, run


def redrive(sqs: Any, dlq_url: str, queue_url: str, *, max_messages: int = 10_000) -> int:
    """Move up to `max_messages` messages from the DLQ to the queue; returns how many moved.

    Each message is sent to the queue before it is deleted from the DLQ, so a failure midway can
    duplicate a job (harmless: copies are idempotent) but never lose one.
    """
    moved = 0
    while moved < max_messages:
        answer = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages = answer.get("Messages", [])
        if not messages:
            break
        for message in messages:
            sqs.send_message(QueueUrl=queue_url, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    return moved


def main(argv: Sequence[str] | None = None) -> int:
    """Redrive a deployed stack's DLQ, named by its CloudFormation stack."""
    from botocore.exceptions import BotoCoreError, ClientError

    parser = Parser(
        prog="devstack.redrive", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack-name", required=True)
    parser.add_argument("--region", help="the stack's region (default: the AWS configuration's)")
    args = parser.parse_args(argv)
    session = aws_session(f"make redrive STACK_NAME={args.stack_name}", region=args.region)
    try:
        stack = session.client("cloudformation").describe_stacks(StackName=args.stack_name)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        moved = redrive(session.client("sqs"), outputs["DeadLetterQueueUrl"], outputs["CopyQueueUrl"])
    except (BotoCoreError, ClientError) as exc:
        raise UserError(f"stack {args.stack_name} in {session.region_name}: {exc}", status=1) from exc
    except KeyError as exc:
        raise UserError(
            f"stack {args.stack_name} has no output {exc}: is it a kie2s3 stack?", status=1
        ) from exc
    print(f"moved {moved} message(s) from the dead-letter queue back to the copy queue")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
