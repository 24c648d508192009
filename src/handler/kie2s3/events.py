"""What kind of event reached the function (cheap: imports nothing heavy, so routing costs no cold start)."""

from typing import Any, Literal

EventKind = Literal["sqs", "dynamodb", "http", "schedule", "unknown"]
# The reconcile schedule's input (template.yaml); EventBridge rules' "Scheduled Event" is accepted too.
RECONCILE_INPUT = {"kie2s3": "reconcile"}


def event_kind(event: dict[str, Any]) -> EventKind:
    """SQS batch, the ledger's DynamoDB stream batch, API Gateway HTTP API (2.0) request, reconcile
    schedule, or something else."""
    records = event.get("Records")
    first = records[0] if isinstance(records, list) and records else None
    if isinstance(first, dict) and first.get("eventSource") == "aws:sqs":
        return "sqs"
    if isinstance(first, dict) and first.get("eventSource") == "aws:dynamodb":
        return "dynamodb"
    context = event.get("requestContext")
    if isinstance(context, dict) and "http" in context:
        return "http"
    if event.get("kie2s3") == RECONCILE_INPUT["kie2s3"] or event.get("detail-type") == "Scheduled Event":
        return "schedule"
    return "unknown"
