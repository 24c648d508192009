"""The single Lambda entry point: routes API Gateway HTTP API (2.0) and SQS events to their handlers."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kie2s3.handlers.http import app as http_api
from kie2s3.handlers.schedule import handle_schedule, is_reconcile_event
from kie2s3.handlers.sqs import handle_sqs
from kie2s3.observability import logger, metrics, tracer


def _event_kind(event: dict[str, Any]) -> str:
    records = event.get("Records")
    if isinstance(records, list) and records and records[0].get("eventSource") == "aws:sqs":
        return "sqs"
    if isinstance(event.get("requestContext"), dict) and "http" in event["requestContext"]:
        return "http"
    if is_reconcile_event(event):
        return "schedule"
    return "unknown"


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Serve one event: HTTP API requests, SQS copy-job batches, scheduled reconcile passes."""
    match _event_kind(event):
        case "sqs":
            return handle_sqs(event, context)
        case "http":
            return http_api.resolve(event, context)
        case "schedule":
            return handle_schedule(event, context)
        case _:
            logger.error("unsupported event", keys=sorted(event)[:10])
            raise ValueError(
                "unsupported event: expected an API Gateway HTTP API (2.0), SQS or schedule event"
            )
