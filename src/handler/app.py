"""The single Lambda entry point: routes API Gateway HTTP API (2.0), SQS, DynamoDB stream and schedule events.

Each kind's handler is imported on its first event, not at init: a copy worker never pays for
the HTTP routes' OpenAPI models, nor the API for the batch and idempotency utilities.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kie2s3.events import event_kind
from kie2s3.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Serve one event: HTTP API requests, SQS copy-job batches, the ledger's stream batches (events
    on EventBridge), scheduled reconcile passes."""
    match event_kind(event):
        case "sqs":
            from kie2s3.handlers.sqs import handle_sqs

            return handle_sqs(event, context)
        case "dynamodb":
            from kie2s3.handlers.stream import handle_stream

            return handle_stream(event, context)
        case "http":
            from kie2s3.handlers.http import app as http_api

            return http_api.resolve(event, context)
        case "schedule":
            from kie2s3.handlers.schedule import handle_schedule

            return handle_schedule(event, context)
        case _:
            logger.error("unsupported event", keys=sorted(event)[:10])
            raise ValueError(
                "unsupported event: expected an API Gateway HTTP API (2.0), SQS, DynamoDB stream or schedule event"
            )
