"""The whole local stack in one context manager: moto in its own process, the kie.ai emulator, the env."""

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from devstack import aws_calls
from devstack.aws import LocalStack, MotoServer, observe_events, provision
from devstack.kie_emulator import KieEmulator
from devstack.lambda_runtime import LambdaContext, SqsPoller, StreamPoller, function_environment
from devstack.template import load_template, stream_mappings

# Runs a function with (event, context): the package's process (devstack.sandbox), None: in-process.
type Invoker = Callable[[dict[str, Any], LambdaContext], Any]
# Local-only credentials: the emulator checks the API key, the function reads both from Secrets Manager.
KIE_API_KEY = "local-kie-api-key"
WEBHOOK_HMAC_KEY = "local-webhook-hmac-key"
CALLBACK_TOKEN = "local-callback-token"
# Signs forwarded callbacks (ForwardUrl); a key of its own, as docs/forwarding.md recommends.
FORWARD_HMAC_KEY = "local-forward-hmac-key"
SECRET_IDS = {
    "KieApiKeySecretId": "kie2s3/kie-api-key",
    "KieWebhookHmacSecretId": "kie2s3/webhook-hmac-key",
    "CallbackTokenSecretId": "kie2s3/callback-token",
    "ForwardHmacSecretId": "kie2s3/forward-hmac-key",
}


@dataclass
class Stack:
    """A running local stack: its servers, its resources and the function's environment."""

    moto: MotoServer
    emulator: KieEmulator
    aws: LocalStack
    events_queue_url: str  # kie2s3's events, as a rule on the bus delivers them (observe_events)
    _clients: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def env(self) -> dict[str, str]:
        """The function's environment: the template's, resolved as `sam local invoke` would."""
        return dict(self.aws.env)

    def client(self, service: str) -> Any:
        """A boto3 client for the emulated AWS, made once per service (the tests ask thousands of times)."""
        if service not in self._clients:
            self._clients[service] = boto3.client(
                service,  # type: ignore[call-overload]
                endpoint_url=self.moto.endpoint_url,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        return self._clients[service]

    def tasks_table(self) -> Any:
        """The tasks ledger as a boto3 DynamoDB Table of the emulated AWS."""
        return boto3.resource(
            "dynamodb",
            endpoint_url=self.moto.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).Table(self.env["TASKS_TABLE"])

    @property
    def bucket(self) -> str:
        """The archive bucket."""
        return self.env["BUCKET_NAME"]

    def poller(self, *, retry_delay: int = 0, invoker: Invoker | None = None) -> SqsPoller:
        """Plays Lambda's SQS event source mapping for the copy queue, as its only consumer.

        A failed batch is received again at once: with no other worker copying beside this one, no
        lock is left to wait for, and the job's five deliveries (then the DLQ) take no time.
        """
        return self._poller("COPY_QUEUE_URL", retry_delay, "kie2s3-copy-worker", invoker)

    def forward_poller(self, *, retry_delay: int | None = 0, invoker: Invoker | None = None) -> SqsPoller:
        """Plays Lambda's SQS event source mapping for the forward queue (ForwardFunction's).

        A job that waits or failed is received again at once (`retry_delay` 0), whatever delay the
        function asked for: the tests move the forwarder's clock instead of waiting. None leaves
        the function's own delays, as Lambda does.
        """
        return self._poller("FORWARD_QUEUE_URL", retry_delay, "kie2s3-forward", invoker)

    def _poller(
        self, variable: str, retry_delay: int | None, function_name: str, invoker: Invoker | None
    ) -> SqsPoller:
        sqs = self.client("sqs")
        url = self.env[variable]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return SqsPoller(
            sqs=sqs,
            queue_url=url,
            queue_arn=arn,
            retry_delay=retry_delay,
            function_name=function_name,
            invoker=invoker,
        )

    def stream_poller(
        self, *, starting_position: str | None = "LATEST", invoker: Invoker | None = None
    ) -> StreamPoller:
        """Plays Lambda's mapping of the ledger's stream to the events function (template.yaml).

        From LATEST by default: it handles what is written from its first poll on (a test's own
        writes, not those of the tests before it); None takes the template's starting position.
        """
        return ledger_stream_poller(
            self.aws.physical_ids, self.client, starting_position=starting_position, invoker=invoker
        )

    def take_events(self) -> list[dict[str, Any]]:
        """Every event the local subscription received since the last call (read and deleted), in order."""
        return take_events(self.client("sqs"), self.events_queue_url)

    def function(self) -> contextlib.AbstractContextManager[None]:
        """Within this block `app.lambda_handler` runs with the function's environment."""
        return function_environment(self.env)


def local_environment(copy_mode: str) -> dict[str, str]:
    """What a local stack sets over the template's environment, which fixes both for every deployed
    stack (queue mode, local sources refused): its copy mode, and downloads from the kie.ai emulator
    (http on loopback)."""
    return {"COPY_MODE": copy_mode, "ALLOW_LOCAL_SOURCES": "true"}


@contextlib.contextmanager
def local_stack(
    *,
    copy_mode: str = "queue",
    overrides: Mapping[str, str] | None = None,
    emulator: KieEmulator | None = None,
    moto: MotoServer | None = None,
) -> Iterator[Stack]:
    """Start moto and the emulator, provision from template.yaml, and tear everything down afterwards."""
    with contextlib.ExitStack() as stack:
        moto = stack.enter_context(moto or MotoServer())
        kie = stack.enter_context(emulator or KieEmulator(api_key=KIE_API_KEY))
        parameters = {
            "KieApiBaseUrl": kie.base_url,
            **SECRET_IDS,
            **(overrides or {}),
        }
        secrets = {
            parameters["KieApiKeySecretId"]: KIE_API_KEY,
            parameters["KieWebhookHmacSecretId"]: WEBHOOK_HMAC_KEY,
            parameters["CallbackTokenSecretId"]: CALLBACK_TOKEN,
            parameters["ForwardHmacSecretId"]: FORWARD_HMAC_KEY,
        }
        aws = provision(
            moto.endpoint_url,
            load_template(),
            parameter_overrides=parameters,
            secrets={k: v for k, v in secrets.items() if k},
            environment=local_environment(copy_mode),
        )
        events_queue_url = observe_events(moto.endpoint_url, aws.env["EVENT_BUS_NAME"])
        yield Stack(moto=moto, emulator=kie, aws=aws, events_queue_url=events_queue_url)


def ledger_stream_poller(
    physical_ids: Mapping[str, str],
    client: Callable[[str], Any],
    *,
    starting_position: str | None = None,
    template: Mapping[str, Any] | None = None,
    invoker: Invoker | None = None,
) -> StreamPoller:
    """A poller playing the template's mapping of the ledger's stream (its batch size, retries,
    bisection and on-failure queue), invoking its function with that function's context."""
    from devstack.serve import function_context

    template = template or load_template()
    [mapping] = stream_mappings(template)
    table = physical_ids[mapping.table]
    stream_arn = client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
    on_failure = None
    if mapping.on_failure is not None:
        sqs, queue_url = client("sqs"), physical_ids[mapping.on_failure]

        def on_failure(record: dict[str, Any]) -> None:
            with aws_calls.acting_as(mapping.function, "lambda"):  # the mapping's destination: Lambda's send
                sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(record))

    return StreamPoller(
        streams=client("dynamodbstreams"),
        stream_arn=stream_arn,
        batch_size=mapping.batch_size,
        starting_position=starting_position or mapping.starting_position,
        max_retry_attempts=mapping.max_retry_attempts,
        bisect_on_error=mapping.bisect_on_error,
        on_failure=on_failure,
        context=lambda: function_context(template, mapping.function),
        function=mapping.function,
        invoker=invoker,
    )


def take_events(sqs: Any, queue_url: str, *, wait_seconds: int = 0) -> list[dict[str, Any]]:
    """Receive and delete every message of the events queue (waiting up to `wait_seconds` for the
    first); each message body is one EventBridge event."""
    events: list[dict[str, Any]] = []
    wait = wait_seconds
    while messages := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait
    ).get("Messages", []):
        wait = 0
        events += [json.loads(message["Body"]) for message in messages]
        sqs.delete_message_batch(  # one request for the ten (a soak takes tens of thousands)
            QueueUrl=queue_url,
            Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)],
        )
    return events
