"""Every retry budget of a copy (and of a forward), layer by layer, and the worst case they make together.

Each layer retries what the layer below it gave up on, so the budgets multiply. Innermost first:

1. One request to AWS (adapters/clients.py): botocore's standard mode, AWS_ATTEMPTS = 5 attempts of
   each S3, DynamoDB, SQS or Secrets Manager call (throttling, 5xx, connection faults). A fenced
   transaction (adapters/ledger.py `fenced`: a copy's opening write, a task's new file items) that
   DynamoDB cancels for meeting another one on its task's item is sent again: FENCE_ATTEMPTS = 5,
   after random pauses of up to 50 ms doubling (at most 0.75 s in all). Nothing else retries a
   single request: urllib3 (kie.ai, the source) is built with retries=False.
2. One byte range of a ranged download (transfer/pipeline.py): RANGE_ATTEMPTS = 3 fetches (a reset,
   a truncated body, a 403 of an expired link, which resolves a fresh link first). The first part
   counts its opening response as the first of them. A range of another version of the source is
   never fetched again: the transfer copies the file from one plain GET instead (transfer/run.py).
3. One transfer (logic/copy.py, RetryPolicy): 4 attempts of the whole transfer (a fresh link, a new
   opening, a new upload), exponential backoff with full jitter (0.5 s doubling to at most 8 s),
   and only while the invocation has time left beyond `reserve_seconds`; an object is stored only
   while `commit_reserve_seconds` of it are left (its lock outlasts the request).
4. One copy job (template.yaml's CopyQueue RedrivePolicy, handlers/sqs.py): MAX_RECEIVE_COUNT = 5
   deliveries; the last one records the file `failed`, then the message waits in the DLQ.

Worst case for one copy job whose file fails with a passing fault every time:
- downloads of the file begun: 4 transfers x 5 deliveries = 20, twice that when each met another
  version and its plain GET failed too (a finished copy is never downloaded again: the
  idempotency record answers every later delivery for 14 days);
- fetches of one byte range: 3 x 4 x 5 = 60;
- requests of one AWS call, e.g. one UploadPart: 5 x 4 x 5 = 100;
- download-url calls: 20, one per transfer, plus one per range that met an expired link.
The reconciler sends a job again only for a file whose ledger item has not moved for 30 minutes
(its job lost, its worker killed): a new job with the same budget.

A forward job (logic/forward.py) has budgets of its own, apart from the copy's: one POST per
delivery (urllib3, retries=False), paced by ForwardPolicy's delays, for FORWARD_MAX_RECEIVE_COUNT =
30 deliveries (waits for files and attempts share them: 16 to 23 hours), then the forward DLQ.

A call to kie.ai's API (adapters/kie_client.py) is one attempt, bounded by KieTimeouts: its callers
own the retries (the transfer's, above). A bulk `POST /copies` (logic/copies.py) asks record-info
for one task after another, within the API function's timeout: it starts a task only while one
call's worst case and BulkPolicy's reserve are left, and answers the rest as not processed.

Events (logic/outbox.py) put what EventBridge refused again with the same RetryPolicy (attempts and
backoff) within one invocation; then the stream's mapping delivers the records again, until they
expire from the stream (template.yaml's EventsStreamMapping).
"""

from dataclasses import dataclass

from tenacity import wait_random_exponential
from tenacity.wait import wait_base

# botocore's attempts of one AWS request, first included (standard retry mode).
AWS_ATTEMPTS = 5
# Sends of a fenced transaction cancelled by a conflict on its task's item, first included, and the
# first pause's bound (doubling).
FENCE_ATTEMPTS = 5
FENCE_PAUSE_SECONDS = 0.05
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
    # No object is stored (PutObject, CompleteMultipartUpload) with less of the invocation left: the
    # copy's lock expires when the invocation would end, and a takedown stops waiting for the copy
    # then. What is stored must land while the lock holds, the request's own time included.
    commit_reserve_seconds: float = 5.0

    def backoff(self) -> wait_base:
        """The pause before each new attempt: exponential from `base_seconds`, at most `cap_seconds`,
        full jitter (tenacity's wait_random_exponential)."""
        return wait_random_exponential(multiplier=self.base_seconds, max=self.cap_seconds)


# Deliveries of one forward job before its DLQ: template.yaml's ForwardQueue maxReceiveCount (a test
# keeps the two equal).
FORWARD_MAX_RECEIVE_COUNT = 30


@dataclass(frozen=True)
class ForwardPolicy:
    """When a forward job is delivered again: the next delivery comes after as long as the job is
    old (so the waits double), within these bounds; after `settle_seconds` it waits no more.

    Waiting for files: 5 s, 10 s, 20 s … 2 min, until the files are settled or `settle_seconds`
    (15 minutes, the issue's promise) have passed since the callback arrived. Backing off after a
    failed attempt: 30 s doubling to 1 h, until the queue's maxReceiveCount (16 to 23 hours;
    docs/forwarding.md), then the dead-letter queue.
    """

    settle_seconds: float = 15 * 60
    wait_min_seconds: int = 5
    wait_max_seconds: int = 120
    retry_min_seconds: int = 30
    retry_max_seconds: int = 3600
    # Connect and read, each: the user's handler answers kie.ai within 15 s (kie-api.md §2).
    timeout_seconds: float = 15.0


@dataclass(frozen=True)
class KieTimeouts:
    """How long one call to kie.ai's API may take: at most `worst_case_seconds`.

    One attempt (the pool is built with retries=False); `connect_seconds` bounds the whole connect,
    shared among every address the host resolves to (adapters/safe_http.py); `read_seconds` bounds
    each wait for the answer, which kie.ai sends at once (a few KiB of JSON).
    """

    connect_seconds: float = 5.0
    read_seconds: float = 15.0

    @property
    def worst_case_seconds(self) -> float:
        """What a deadline guarding one call must keep for it: connect plus read."""
        return self.connect_seconds + self.read_seconds


@dataclass(frozen=True)
class BulkPolicy:
    """How a bulk `POST /copies` plans against the API function's timeout (29 s, template.yaml).

    A task is started only with its record-info call's worst case (the kie client's KieTimeouts)
    plus `reserve_seconds` left: the time recording that task (ledger writes, the queue) and
    answering take after the call. Tasks it cannot start are answered as not processed.
    """

    reserve_seconds: float = 5.0


# The production policies (tests hand in fast ones: the same attempts without the waits).
TRANSFER_RETRY = RetryPolicy()
FORWARD_RETRY = ForwardPolicy()
KIE_TIMEOUTS = KieTimeouts()
BULK_POLICY = BulkPolicy()
