"""A docker-less stand-in for the Lambda runtime: events, a context, the template's env, an SQS poller."""

import json
import os
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from devstack import aws_calls, payload

# With KIE2S3_AWS_CALLS set, every boto3 client built from here on is recorded for the IAM check.
aws_calls.recorder()

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
# The queue's counts that `SqsPoller.drain` waits on: every message not yet deleted.
_COUNTS = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


@dataclass
class LambdaContext:
    """The parts of Lambda's context object that Powertools and the handler read."""

    function_name: str = "kie2s3-local"
    memory_limit_in_mb: int = 1024
    timeout_seconds: float = 900.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    @property
    def invoked_function_arn(self) -> str:
        """The function's ARN, as Lambda passes it."""
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        """The function's log group."""
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        """A log stream name."""
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the timeout."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def http_event(
    method: str,
    path: str,
    *,
    body: bytes | str | Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    route: str | None = None,
    path_parameters: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API event, payload format 2.0 (headers lower-cased, as the gateway sends them)."""
    if isinstance(body, Mapping):
        body = json.dumps(body)
    if isinstance(body, bytes):
        body = body.decode()
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    lowered.setdefault("content-type", "application/json")
    now = time.time()
    route_key = f"{method} {route or path}"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": urlencode(query or {}),
        "headers": lowered,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": lowered.get("user-agent", "kie2s3-devstack"),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = body
    if query:
        event["queryStringParameters"] = dict(query)
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    return event


def task_status_event(task_id: str) -> dict[str, Any]:
    """`GET /tasks/{taskId}`, as the HTTP API routes it."""
    return http_event(
        "GET", f"/tasks/{task_id}", route="/tasks/{taskId}", path_parameters={"taskId": task_id}
    )


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """An SQS event as Lambda's poller builds it from ReceiveMessage results."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


@contextmanager
def function_environment(env: Mapping[str, str]) -> Iterator[None]:
    """Run with exactly the function's environment variables set (like a fresh container), then restore."""
    saved = dict(os.environ)
    os.environ.update(env)
    # Imported only now: Powertools reads its settings from the environment at import, as in a container.
    from kie2s3.handlers import wiring

    wiring.reset()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        wiring.reset()


def invoke(event: dict[str, Any], context: LambdaContext | None = None) -> Any:
    """Call the real entry point, `app.lambda_handler`, with a JSON round trip like the runtime's,
    under Lambda's payload limits (devstack.payload: FunctionError for an event or answer too large).

    When AWS calls are recorded (devstack.aws_calls), the invocation's requests are those of the
    function the template routes the event to; Lambda's own for it (its logs, its trace) too.
    """
    from app import lambda_handler

    request = json.loads(payload.check_request(payload.encoded(event)))
    function = deployed_function(event) if aws_calls.recorder() else None
    with aws_calls.acting_as(function):
        _note_runtime(function)
        result = lambda_handler(request, context or LambdaContext())
    return json.loads(payload.check_response(payload.encoded(result)))


def deployed_function(event: Mapping[str, Any]) -> str:
    """The template's function the event reaches when deployed (devstack.aws_calls)."""
    return aws_calls.deployed_function(event)


def _note_runtime(function: str | None) -> None:
    """What Lambda does with the function's role at each invocation: its log stream and log events
    (the template's LoggingConfig.LogGroup) and, with Tracing Active, its trace segments."""
    for service, operation in (
        ("logs", "CreateLogStream"),
        ("logs", "PutLogEvents"),
        ("xray", "PutTraceSegments"),
        ("xray", "PutTelemetryRecords"),
    ):
        aws_calls.note_lambda(
            function, service, operation, {"LogGroupOf": function} if service == "logs" else {}
        )


@dataclass
class SqsPoller:
    """Plays Lambda's SQS event source mapping: receive, invoke, delete what succeeded.

    Messages a batch reports as failed are made visible again after `retry_delay` seconds (the
    real mapping waits for the queue's visibility timeout, 90 minutes here: too long for a test);
    with `retry_delay` None they keep whatever visibility the function gave them, as on Lambda.
    A message received but never answered (a killed worker) comes back after `visibility_timeout`
    seconds when it is set, else after the queue's own.
    """

    sqs: Any
    queue_url: str
    queue_arn: str
    batch_size: int = 1
    retry_delay: int | None = 1
    timeout_seconds: float = 900.0  # the worker's Lambda timeout (template.yaml)
    function_name: str = "kie2s3-copy-worker"
    memory_limit_in_mb: int = 1024
    visibility_timeout: int | None = None
    invoked: int = 0
    on_batch: Callable[[dict[str, Any]], None] | None = None
    # Runs the function (event, context) -> result: the package in a process of its own
    # (devstack.sandbox), or None for `app.lambda_handler` in this process.
    invoker: Callable[[dict[str, Any], LambdaContext], Any] | None = None
    invocation_seconds: list[float] = field(default_factory=list)  # each handler call, as Lambda's Duration

    def poll_once(self, wait_seconds: int = 1) -> int:
        """Receive one batch and process it; returns how many messages it held."""
        visibility = {} if self.visibility_timeout is None else {"VisibilityTimeout": self.visibility_timeout}
        aws_calls.note_lambda(self._function(), "sqs", "GetQueueAttributes", {"QueueUrl": self.queue_url})
        with self._as_lambda():
            answer = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=self.batch_size,
                WaitTimeSeconds=wait_seconds,
                AttributeNames=["All"],
                **visibility,
            )
        messages = answer.get("Messages", [])
        if not messages:
            return 0
        event = sqs_event(messages, self.queue_arn)
        self.invoked += 1
        if self.on_batch is not None:
            self.on_batch(event)
        try:
            context = LambdaContext(
                function_name=self.function_name,
                timeout_seconds=self.timeout_seconds,
                memory_limit_in_mb=self.memory_limit_in_mb,
            )
            started = time.perf_counter()
            try:
                response = (self.invoker or invoke)(event, context)
            finally:
                self.invocation_seconds.append(time.perf_counter() - started)
            failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
        except Exception:  # as on Lambda, a failed invocation returns the whole batch
            failed = {m["MessageId"] for m in messages}
        for message in messages:
            if message["MessageId"] in failed:
                if self.retry_delay is None:
                    continue
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=self.retry_delay,
                )
            else:
                with self._as_lambda():
                    self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

    def _as_lambda(self) -> Any:
        """Receiving and deleting are Lambda's, with the queue's function's role (devstack.aws_calls),
        as is reading the queue's attributes (its documented permissions: the stand-in reads none);
        making a failed message visible sooner is the stand-in's own shortcut, not recorded."""
        return aws_calls.acting_as(self._function(), "lambda")

    def _function(self) -> str | None:
        """The template's function of this queue (when AWS calls are recorded)."""
        if not aws_calls.recorder():
            return None
        return deployed_function({"Records": [{"eventSource": "aws:sqs", "eventSourceARN": self.queue_arn}]})

    def outstanding(self) -> int:
        """Messages the queue still holds: visible, in flight (received, not yet deleted) or delayed."""
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=_COUNTS)[
            "Attributes"
        ]
        return sum(int(attributes.get(name, 0)) for name in _COUNTS)

    def drain(self, *, timeout: float = 300.0) -> None:
        """Process batches until the queue holds nothing: none visible, none in flight, none delayed.

        Returns as soon as the queue's counts say so, rather than after empty polls. While messages
        are only in flight or delayed (a failed batch waiting for `retry_delay`, a killed worker's
        message waiting for its visibility timeout), it waits for them with a long poll of at most 1 s.
        The counts are exact on the local stack; on SQS they are approximate, so do not drain a
        deployed queue with this.
        """
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"queue not drained within {timeout} s")
            if self.poll_once(wait_seconds=0):
                continue
            if self.outstanding() == 0:
                return
            self.poll_once(wait_seconds=1)


@dataclass
class StreamPoller:
    """Plays Lambda's event source mapping of a DynamoDB stream: read a batch of each shard, invoke,
    move on past what succeeded.

    As the real mapping does: a batch answered with `batchItemFailures` is delivered again from the
    lowest failed sequence number; an invocation that raises is retried, split in two when
    `bisect_on_error`; after `max_retry_attempts` retries (-1: without end) the batch is given up,
    its place (shard, sequence numbers) sent to `on_failure` as Lambda's on-failure record, and the
    shard read on. Retries follow at once (the real mapping's come as fast: it does not back off).
    `starting_position` LATEST reads only what is written after the first poll.
    """

    streams: Any
    stream_arn: str
    batch_size: int = 100
    starting_position: str = "TRIM_HORIZON"
    max_retry_attempts: int = -1
    bisect_on_error: bool = False
    on_failure: Callable[[dict[str, Any]], None] | None = None
    context: Callable[[], LambdaContext] = LambdaContext
    function: str | None = None  # the template's function of the mapping, whose role reads the stream
    invoker: Callable[[dict[str, Any], LambdaContext], Any] | None = None  # as SqsPoller's
    invoked: int = 0
    given_up: int = 0  # batches sent to on_failure
    # Each shard's checkpoint, as the real mapping keeps one: read next AT or AFTER a sequence number
    # (None: from the shard's start), a fresh iterator taken from it at every read; or, for LATEST
    # until the first batch, the iterator GetShardIterator gave at start() (reading the shard to its
    # end to learn its last sequence number would cost the whole stream at every start).
    _checkpoints: dict[str, tuple[str, str | None]] = field(default_factory=dict, repr=False)
    _retries: dict[str, int] = field(default_factory=dict, repr=False)
    # A batch split in two after an error: the smaller batch size, until the split batch's last record.
    _splits: dict[str, tuple[int, str]] = field(default_factory=dict, repr=False)

    def start(self) -> "StreamPoller":
        """Take each shard's starting position now (polling does it too, the first time)."""
        # Lambda's reads of the stream, with the function's role (its documented permissions: the
        # stand-in lists no streams, Lambda does).
        self._note_read("ListStreams")
        self._note_read("DescribeStream")
        for shard in self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]:
            shard_id = shard["ShardId"]
            if shard_id not in self._checkpoints:
                self._checkpoints[shard_id] = (
                    ("ITERATOR", self._get_iterator(shard_id, {"ShardIteratorType": "LATEST"}))
                    if self.starting_position == "LATEST"
                    else ("AFTER_SEQUENCE_NUMBER", None)
                )
        return self

    def poll_once(self) -> int:
        """One batch of each shard, each handled as the mapping would; how many records were read."""
        self.start()
        return sum(self._shard_batch(shard_id) for shard_id in list(self._checkpoints))

    def drain(self, *, timeout: float = 120.0) -> None:
        """Handle batches until no shard holds a record not yet handled (retries and give-ups included)."""
        deadline = time.monotonic() + timeout
        while self.poll_once():
            if time.monotonic() > deadline:
                raise TimeoutError(f"stream not drained within {timeout} s")

    def _note_read(self, operation: str) -> None:
        if aws_calls.recorder():
            function = self.function or deployed_function({"Records": [{"eventSource": "aws:dynamodb"}]})
            aws_calls.note_lambda(function, "dynamodb", operation, {"StreamArn": self.stream_arn})

    def _iterator(self, shard_id: str) -> str:
        kind, where = self._checkpoints[shard_id]
        if kind == "ITERATOR" and where:
            return where  # LATEST as of start(), until a batch moves the checkpoint past it
        return self._get_iterator(
            shard_id,
            {"ShardIteratorType": kind, "SequenceNumber": where}
            if where
            else {"ShardIteratorType": "TRIM_HORIZON"},
        )

    def _get_iterator(self, shard_id: str, where: dict[str, str]) -> str:
        self._note_read("GetShardIterator")
        answer = self.streams.get_shard_iterator(StreamArn=self.stream_arn, ShardId=shard_id, **where)
        return str(answer["ShardIterator"])

    def _shard_batch(self, shard_id: str) -> int:
        limit, _ = self._splits.get(shard_id, (self.batch_size, ""))
        self._note_read("GetRecords")
        records = self.streams.get_records(ShardIterator=self._iterator(shard_id), Limit=limit)["Records"]
        if not records:
            return 0
        records = self._fitting(records)
        failed_from = self._invoke(shard_id, records)
        if failed_from is not None:
            retries = self._retries.get(shard_id, 0) + 1
            if self.max_retry_attempts < 0 or retries <= self.max_retry_attempts:
                self._retries[shard_id] = retries
                sequence = records[failed_from]["dynamodb"]["SequenceNumber"]
                self._checkpoints[shard_id] = ("AT_SEQUENCE_NUMBER", sequence)
                return len(records)
            self._give_up(shard_id, records[failed_from:])  # retries exhausted: on past the batch
        last = records[-1]["dynamodb"]["SequenceNumber"]
        self._checkpoints[shard_id] = ("AFTER_SEQUENCE_NUMBER", last)
        self._retries.pop(shard_id, None)
        if int(last) >= int(self._splits.get(shard_id, (0, "0"))[1]):
            self._splits.pop(shard_id, None)
        return len(records)

    def _fitting(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The batch's first records whose event fits Lambda's 6 MB (at least one), as the mapping
        makes a batch: the rest are read again after them."""
        while len(records) > 1 and len(self._event(records)) >= payload.MAX_REQUEST_BYTES:
            records = records[: len(records) // 2]
        return records

    def _event(self, records: list[dict[str, Any]]) -> bytes:
        return json.dumps({"Records": [self._lambda_record(r) for r in records]}, default=str).encode()

    def _invoke(self, shard_id: str, records: list[dict[str, Any]]) -> int | None:
        """Invoke with the batch; None when all succeeded, else the position the retry starts from."""
        event = {"Records": [self._lambda_record(record) for record in records]}
        self.invoked += 1
        try:
            response = (self.invoker or invoke)(event, self.context())
        except Exception:  # as on Lambda: logged, and the whole batch again (split in two when bisecting)
            traceback.print_exc()
            if self.bisect_on_error and len(records) > 1:
                until = self._splits.get(shard_id, (0, records[-1]["dynamodb"]["SequenceNumber"]))[1]
                self._splits[shard_id] = (len(records) // 2, until)
            return 0
        failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
        positions = [n for n, r in enumerate(records) if r["dynamodb"]["SequenceNumber"] in failed]
        return min(positions) if positions else None

    def _lambda_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """A record of GetRecords as Lambda hands it on: with its stream's ARN, the time in epoch seconds."""
        change = dict(record["dynamodb"])
        created = change.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            change["ApproximateCreationDateTime"] = created.timestamp()
        return {**record, "dynamodb": change, "eventSourceARN": self.stream_arn}

    def _give_up(self, shard_id: str, records: list[dict[str, Any]]) -> None:
        self.given_up += 1
        if self.on_failure is None:
            return
        first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
        self.on_failure(
            {
                "requestContext": {
                    "requestId": str(uuid.uuid4()),
                    "condition": "RetryAttemptsExhausted",
                    "approximateInvokeCount": self._retries.get(shard_id, 0) + 1,
                },
                "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
                "version": "1.0",
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "DDBStreamBatchInfo": {
                    "shardId": shard_id,
                    "startSequenceNumber": first["SequenceNumber"],
                    "endSequenceNumber": last["SequenceNumber"],
                    "approximateArrivalOfFirstRecord": str(first.get("ApproximateCreationDateTime", "")),
                    "approximateArrivalOfLastRecord": str(last.get("ApproximateCreationDateTime", "")),
                    "batchSize": len(records),
                    "streamArn": self.stream_arn,
                },
            }
        )
