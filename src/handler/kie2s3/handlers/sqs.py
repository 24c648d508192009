"""The SQS workers: a copy job is one file, a forward job one accepted callback; failures are
reported per message, and each record is routed by the queue it came from."""

import time
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from kie2s3.errors import Kie2S3Error, RetryLaterError
from kie2s3.handlers.wiring import get_services
from kie2s3.logic.copy import copy_file
from kie2s3.logic.forward import forward_callback
from kie2s3.models import CopyJob, ForwardJob
from kie2s3.observability import logger
from kie2s3.retries import FORWARD_MAX_RECEIVE_COUNT, MAX_RECEIVE_COUNT

# Report failures per message, even when every message of the batch failed: a retryable failure is
# a normal event here, not a function error (which would also trip the Errors alarm).
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def _deliveries(record: SQSRecord) -> int:
    return int(record.attributes.approximate_receive_count or 1)


def _copy_record(record: SQSRecord, lambda_context: LambdaContext) -> None:
    # A body that does not parse raises too: after maxReceiveCount it waits in the DLQ, not lost.
    job = CopyJob.model_validate_json(record.body)
    logger.set_correlation_id(job.task_id)
    deliveries = _deliveries(record)
    deadline = time.monotonic() + lambda_context.get_remaining_time_in_millis() / 1000
    copy_file(get_services(), job, deadline=deadline, last_delivery=deliveries >= MAX_RECEIVE_COUNT)


def _forward_record(record: SQSRecord) -> None:
    job = ForwardJob.model_validate_json(record.body)
    logger.set_correlation_id(job.task_id)
    services = get_services()
    last = _deliveries(record) >= FORWARD_MAX_RECEIVE_COUNT
    try:
        forward_callback(services, job, last_delivery=last)
    except RetryLaterError as exc:
        if services.forwarding is not None:
            try:
                services.forwarding.queue.deliver_again_in(record.receipt_handle, exc.after_seconds)
            except Kie2S3Error as failed:  # the queue's own visibility timeout paces it then
                logger.warning("forward job not delayed", reason=failed.reason)
        raise


def _record(record: SQSRecord, lambda_context: LambdaContext) -> None:
    forwarding = get_services().forwarding
    if forwarding is not None and forwarding.queue.is_source_of(record.event_source_arn):
        _forward_record(record)
    else:
        _copy_record(record, lambda_context)


def handle_sqs(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Copy or forward each job; a retryable failure leaves its message for SQS to deliver again."""
    get_services().guard.register_lambda_context(context)
    response = process_partial_response(
        event=event, record_handler=_record, processor=processor, context=context
    )
    return dict(response)
