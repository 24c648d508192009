"""Every retry budget of a copy, layer by layer, and the worst case they make together.

Each layer retries what the layer below it gave up on, so the budgets multiply. Innermost first:

1. One request to AWS (adapters/clients.py): botocore's standard mode, AWS_ATTEMPTS = 5 attempts of
   each S3, DynamoDB, SQS or Secrets Manager call (throttling, 5xx, connection faults). Nothing
   else retries a single request: urllib3 (kie.ai, the source) is built with retries=False.
2. One byte range of a ranged download (transfer/pipeline.py): RANGE_ATTEMPTS = 3 fetches (a reset,
   a truncated body, a 403 of an expired link, which resolves a fresh link first). The first part
   counts its opening response as the first of them. A range of another version of the source is
   never fetched again: the whole transfer starts over.
3. One transfer (logic/copy.py, RetryPolicy): 4 attempts of the whole transfer (a fresh link, a new
   opening, a new upload), exponential backoff with full jitter (0.5 s doubling to at most 8 s),
   and only while the invocation has time left beyond `reserve_seconds`.
4. One copy job (template.yaml's CopyQueue RedrivePolicy, handlers/sqs.py): MAX_RECEIVE_COUNT = 5
   deliveries; the last one records the file `failed`, then the message waits in the DLQ.

Worst case for one copy job whose file fails with a passing fault every time:
- downloads of the file begun: 4 transfers x 5 deliveries = 20 (a finished copy is never
  downloaded again: the idempotency record answers every later delivery for 14 days);
- fetches of one byte range: 3 x 4 x 5 = 60;
- requests of one AWS call, e.g. one UploadPart: 5 x 4 x 5 = 100;
- download-url calls: 20, one per transfer, plus one per range that met an expired link.
The reconciler sends a job again only for a file whose ledger item has not moved for 30 minutes
(its job lost, its worker killed): a new job with the same budget.
"""

from dataclasses import dataclass

# botocore's attempts of one AWS request, first included (standard retry mode).
AWS_ATTEMPTS = 5
# Fetches of one byte range within one transfer, first included.
RANGE_ATTEMPTS = 3
# Deliveries of one copy job before the DLQ: template.yaml's CopyQueue maxReceiveCount (a test keeps
# the two equal). The delivery that carries this count is the last, so its failure is recorded.
MAX_RECEIVE_COUNT = 5


@dataclass(frozen=True)
class RetryPolicy:
    """In-invocation retries of a transfer: exponential backoff with full jitter."""

    attempts: int = 4
    base_seconds: float = 0.5
    cap_seconds: float = 8.0
    # Time kept back for recording the outcome and answering SQS before the Lambda timeout.
    reserve_seconds: float = 20.0


# The production policy (tests hand in a fast one: the same attempts without the waits).
TRANSFER_RETRY = RetryPolicy()
