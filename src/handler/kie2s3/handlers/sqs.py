"""The copy worker: one SQS message is one file; failures are reported per message."""

import time
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from kie2s3.handlers.wiring import get_services
from kie2s3.logic.copy import copy_file
from kie2s3.models import CopyJob
from kie2s3.observability import logger
from kie2s3.retries import MAX_RECEIVE_COUNT

# Report failures per message, even when every message of the batch failed: a retryable failure is
# a normal event here, not a function error (which would also trip the Errors alarm).
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def _copy_record(record: SQSRecord, lambda_context: LambdaContext) -> None:
    # A body that does not parse raises too: after maxReceiveCount it waits in the DLQ, not lost.
    job = CopyJob.model_validate_json(record.body)
    logger.set_correlation_id(job.task_id)
    deliveries = int(record.attributes.approximate_receive_count or 1)
    deadline = time.monotonic() + lambda_context.get_remaining_time_in_millis() / 1000
    copy_file(get_services(), job, deadline=deadline, last_delivery=deliveries >= MAX_RECEIVE_COUNT)


def handle_sqs(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Copy each job; a retryable failure leaves its message for SQS to deliver again."""
    get_services().guard.register_lambda_context(context)
    response = process_partial_response(
        event=event, record_handler=_copy_record, processor=processor, context=context
    )
    return dict(response)
