"""The SQS queues: copy jobs (one message per file) and forward jobs (one per accepted callback)."""

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from kie2s3.errors import RetryableError
from kie2s3.models import CopyJob, ForwardJob
from kie2s3.ports import grouped

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

# SendMessageBatch takes at most 10 entries, and at most 256 KiB of message bodies in all, as one
# message (SQS quotas and the SendMessageBatch reference: docs.aws.amazon.com/AWSSimpleQueueService/
# latest/APIReference/API_SendMessageBatch.html; newer queues take up to 1 MiB: kie2s3 keeps to 256 KiB).
SQS_BATCH_LIMIT = 10
SQS_MESSAGE_BYTES = 256 * 1024


def batches(bodies: Sequence[str]) -> Iterator[list[str]]:
    """The message bodies in their order, grouped into SendMessageBatch requests SQS takes (at most
    SQS_BATCH_LIMIT of them, SQS_MESSAGE_BYTES in all); ValueError for one no request can carry."""

    def size_of(body: str) -> int:
        length = len(body.encode())
        if length > SQS_MESSAGE_BYTES:
            raise ValueError(f"a message of {length} bytes: SQS takes at most {SQS_MESSAGE_BYTES}")
        return length

    return grouped(bodies, size_of, SQS_BATCH_LIMIT, SQS_MESSAGE_BYTES)


class CopyQueue:
    """Sends copy jobs; raises RetryableError unless every job was accepted (delivery: at least once)."""

    def __init__(self, client: "SQSClient", queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def send(self, jobs: Sequence[CopyJob]) -> None:
        """Enqueue the jobs in batches SQS takes (`batches`: ten at most, 256 KiB in all)."""
        for batch in batches([job.model_dump_json() for job in jobs]):
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(n), "MessageBody": body} for n, body in enumerate(batch)
            ]
            try:
                answer = self._client.send_message_batch(QueueUrl=self._url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                raise RetryableError(f"cannot enqueue copy jobs: {type(exc).__name__}") from exc
            if failed := answer.get("Failed"):
                raise RetryableError(f"SQS refused {len(failed)} copy job(s): {failed[0].get('Code')}")


class ForwardQueue:
    """Sends forward jobs, and paces a job's next delivery (its visibility) while it waits or backs off."""

    def __init__(self, client: "SQSClient", queue_url: str) -> None:
        self._client = client
        self._url = queue_url
        self._name = queue_url.rstrip("/").rsplit("/", 1)[-1]

    def is_source_of(self, event_source_arn: str) -> bool:
        """Whether an SQS record came from this queue (its ARN ends with the queue's name)."""
        return event_source_arn.rsplit(":", 1)[-1] == self._name

    def send(self, job: ForwardJob) -> None:
        """Enqueue one job; RetryableError when SQS does not take it."""
        try:
            self._client.send_message(QueueUrl=self._url, MessageBody=job.model_dump_json())
        except (ClientError, BotoCoreError) as exc:
            raise RetryableError(f"cannot enqueue the forward job: {type(exc).__name__}") from exc

    def deliver_again_in(self, receipt_handle: str, seconds: int) -> None:
        """Make a received job visible again in `seconds` (SQS allows at most 12 hours)."""
        try:
            self._client.change_message_visibility(
                QueueUrl=self._url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )
        except (ClientError, BotoCoreError) as exc:
            raise RetryableError(f"cannot delay the forward job: {type(exc).__name__}") from exc
