"""The ledger's stream: each batch of DynamoDB stream records becomes events on EventBridge."""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from kie2s3.adapters.ledger import stream_change
from kie2s3.handlers.wiring import get_services
from kie2s3.logic.outbox import TaskReads, events_of, publish
from kie2s3.models import BusEvent
from kie2s3.observability import logger

# Failures are reported per record (by sequence number): the event source mapping delivers the
# batch again from the first failed record. A failure is a normal event here, not a function error.
processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)


def handle_stream(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Work out each record's events (reading each task once per batch), then put them all at once,
    in requests of up to 10; a record whose events could not be put is reported failed too."""
    services = get_services()
    reads: TaskReads = {}
    collected: list[tuple[str, list[BusEvent]]] = []

    def collect(record: DynamoDBRecord) -> None:
        stream = record.dynamodb
        if stream is None or stream.sequence_number is None:
            raise ValueError("a DynamoDB stream record without its dynamodb part")
        change = stream_change(stream.keys, stream.old_image, stream.new_image)
        if change is not None:
            logger.set_correlation_id(change.task_id)
        collected.append((stream.sequence_number, events_of(services, change, reads)))

    response = process_partial_response(
        event=event, record_handler=collect, processor=processor, context=context
    )
    logger.set_correlation_id(None)
    reported = {failure["itemIdentifier"] for failure in response.get("batchItemFailures", [])}
    unpublished = publish(services, collected) - reported
    failures = [*response.get("batchItemFailures", []), *({"itemIdentifier": s} for s in sorted(unpublished))]
    return {"batchItemFailures": failures}
