"""The emulated AWS: moto's server in its own process, provisioned from template.yaml's own resources."""

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, cast

import boto3

from devstack import aws_calls
from devstack.template import (
    DEFAULT_STACK_NAME,
    NO_VALUE,
    REGION,
    Resolver,
    TemplateError,
    function_environment,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import (
        LifecycleRuleTypeDef,
        ObjectLockConfigurationTypeDef,
        ServerSideEncryptionConfigurationTypeDef,
    )
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType

HOST: Final = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS: Final = 20.0
# moto holds its state in memory only, and its server waits out keep-alive connections after SIGTERM:
# a short grace loses nothing and spares every test session the wait.
STOP_GRACE_SECONDS: Final = 1.0
LOG_TAIL_CHARS: Final = 4000


def aws_environment(endpoint_url: str) -> dict[str, str]:
    """boto3's standard variables pointing every client at the emulator (no home-made endpoint settings)."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }


# ---------------------------------------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


_REPO_ROOT: Final = Path(__file__).resolve().parent.parent


def _moto_command(port: int) -> list[str]:
    # moto's own server, its transactions' rollback made independent of the streams' length.
    return [sys.executable, "-m", "devstack.moto_server", "-H", HOST, "-p", str(port)]


MOTO_ENVIRONMENT: Final = {
    # moto keeps an object's bytes in memory up to this size and spills the rest to temporary files
    # (by default from 5 MiB, so every part of a multipart upload went to disk and back, and
    # completing a large upload was disk-bound: docs/benchmarks.md). S3 itself does no such thing;
    # in memory, moto's timings are steadier and closer to what they stand for.
    "MOTO_S3_DEFAULT_KEY_BUFFER_SIZE": str(8 * 1024**3),
}


class MotoServer:
    """moto's server mode in its own process group on a free loopback port.

    Use as a context manager (or `start()` / `stop()`); `stop()` ends the whole process group and is
    safe to call twice. The server also stops when the interpreter exits.
    """

    def __init__(
        self,
        *,
        startup_timeout: float = STARTUP_TIMEOUT_SECONDS,
        log_dir: Path | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.startup_timeout = startup_timeout
        self._environment = {**MOTO_ENVIRONMENT, **(environment or {})}  # over MOTO_ENVIRONMENT
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._log_dir: Path | None = None
        self._given_log_dir = log_dir  # kept after stop(); a temporary one is removed

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> Self:
        """Start the server and wait until it answers; raises with the server's log tail if it does not."""
        if self._process is not None:
            return self
        self._log_dir = self._given_log_dir or Path(tempfile.mkdtemp(prefix="kie2s3-moto-"))
        self._port = _free_port()
        log = (self._log_dir / "moto.log").open("wb")
        try:
            self._process = subprocess.Popen(
                _moto_command(self._port),
                env={**os.environ, **self._environment},
                cwd=_REPO_ROOT,  # where `python -m devstack.moto_server` finds devstack
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends it and anything it spawned
            )
        finally:
            log.close()
        atexit.register(self.stop)
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"moto server exited with code {self._process.returncode} on start:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise RuntimeError(f"moto server did not answer within {self.startup_timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Terminate the server's process group (SIGTERM, then SIGKILL after STOP_GRACE_SECONDS); idempotent."""
        process, self._process = self._process, None
        atexit.unregister(self.stop)
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            # Children that outlived the leader would still be in the group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        if self._log_dir is not None and self._given_log_dir is None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
        self._log_dir = None

    # ------------------------------------------------------------------ access
    @property
    def endpoint_url(self) -> str:
        """`http://127.0.0.1:<port>` of the running server."""
        if self._port is None:
            raise RuntimeError("moto server is not started")
        return f"http://{HOST}:{self._port}"

    @property
    def running(self) -> bool:
        """The server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int:
        """The server's process id (also its process group id)."""
        if self._process is None:
            raise RuntimeError("moto server is not running")
        return self._process.pid

    def log_tail(self) -> str:
        """The end of the server's log, for error messages."""
        if self._log_dir is None:
            return ""
        try:
            return (self._log_dir / "moto.log").read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError:
            return ""

    def reset(self) -> None:
        """Forget every resource in every service (moto's reset API)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()


# ---------------------------------------------------------------------------------------------- provisioning


@dataclass(frozen=True)
class LocalStack:
    """What `provision` created: physical ids, the functions' environment and the parameter values."""

    physical_ids: dict[str, str]
    env: dict[str, str]
    parameters: dict[str, str]


# Properties that change nothing a local run can observe; every other unhandled property raises, so the
# template and the local stack cannot drift apart silently.
IGNORABLE_PROPERTIES: Final[dict[str, frozenset[str]]] = {
    "AWS::S3::Bucket": frozenset({"Tags", "MetricsConfigurations", "AnalyticsConfigurations"}),
    "AWS::DynamoDB::Table": frozenset({"Tags", "ContributorInsightsSpecification", "TableClass"}),
    "AWS::SQS::Queue": frozenset({"Tags"}),
}

# The explicit-name property of each type; without it the physical name is "<stack>-<logical id>".
_NAME_PROPERTIES: Final = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SQS::Queue": "QueueName",
}


@dataclass(frozen=True)
class _Clients:
    s3: "S3Client"
    dynamodb: "DynamoDBClient"
    sqs: "SQSClient"
    secretsmanager: "SecretsManagerClient"


def _clients(endpoint_url: str) -> _Clients:
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    return _Clients(
        s3=session.client("s3", endpoint_url=endpoint_url),
        dynamodb=session.client("dynamodb", endpoint_url=endpoint_url),
        sqs=session.client("sqs", endpoint_url=endpoint_url),
        secretsmanager=session.client("secretsmanager", endpoint_url=endpoint_url),
    )


def _pick(source: Mapping[str, Any], renames: Mapping[str, str], where: str) -> dict[str, Any]:
    """Copy the keys of `source` under their API names; a key without a rename is an error."""
    unknown = sorted(set(source) - set(renames))
    if unknown:
        raise TemplateError(f"{where}: not supported locally: {', '.join(unknown)}")
    return {renames[key]: value for key, value in source.items()}


# ------------------------------------------------------------------ S3


def _bucket_encryption(props: Mapping[str, Any]) -> "ServerSideEncryptionConfigurationTypeDef":
    rules = []
    for rule in props["ServerSideEncryptionConfiguration"]:
        api_rule = _pick(
            rule,
            {
                "ServerSideEncryptionByDefault": "ApplyServerSideEncryptionByDefault",
                "BucketKeyEnabled": "BucketKeyEnabled",
            },
            "BucketEncryption rule",
        )
        rules.append(api_rule)
    return cast("ServerSideEncryptionConfigurationTypeDef", {"Rules": rules})


def _lifecycle_rule(rule: Mapping[str, Any]) -> "LifecycleRuleTypeDef":
    api_rule: dict[str, Any] = {"Filter": {"Prefix": rule.get("Prefix", "")}}
    for key, value in rule.items():
        match key:
            case "Id":
                api_rule["ID"] = value
            case "Status":
                api_rule["Status"] = value
            case "Prefix":
                pass
            case "AbortIncompleteMultipartUpload":
                api_rule[key] = {"DaysAfterInitiation": int(value["DaysAfterInitiation"])}
            case "ExpirationInDays":
                api_rule["Expiration"] = {"Days": int(value)}
            case "NoncurrentVersionExpirationInDays":
                api_rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(value)}
            case _:
                raise TemplateError(f"LifecycleConfiguration rule property {key} is not supported locally")
    return cast("LifecycleRuleTypeDef", api_rule)


def _object_lock(value: Mapping[str, Any]) -> "ObjectLockConfigurationTypeDef":
    """ObjectLockConfiguration as the API takes it (CloudFormation hands the period on as text)."""
    retention = dict(value.get("Rule", {}).get("DefaultRetention", {}))
    for period in ("Days", "Years"):
        if period in retention:
            retention[period] = int(retention[period])
    configuration: dict[str, Any] = {"ObjectLockEnabled": value.get("ObjectLockEnabled", "Enabled")}
    if retention:
        configuration["Rule"] = {"DefaultRetention": retention}
    return cast("ObjectLockConfigurationTypeDef", configuration)


def _create_bucket(clients: _Clients, name: str, props: Mapping[str, Any]) -> None:
    s3 = clients.s3
    if props.get("ObjectLockEnabled") in (True, "true"):  # only when the bucket is created
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    else:
        s3.create_bucket(Bucket=name)  # us-east-1: no LocationConstraint
    for key, value in props.items():
        match key:
            case "ObjectLockConfiguration":
                s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration=_object_lock(value))
            case "BucketEncryption":
                s3.put_bucket_encryption(
                    Bucket=name, ServerSideEncryptionConfiguration=_bucket_encryption(value)
                )
            case "PublicAccessBlockConfiguration":
                s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=value)
            case "OwnershipControls":
                s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls={"Rules": value["Rules"]})
            case "LifecycleConfiguration":
                rules = [_lifecycle_rule(rule) for rule in value["Rules"]]
                s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
            case "VersioningConfiguration":
                s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": value["Status"]})


_BUCKET_PROPERTIES: Final = frozenset(
    {
        "BucketName",
        "BucketEncryption",
        "PublicAccessBlockConfiguration",
        "OwnershipControls",
        "LifecycleConfiguration",
        "VersioningConfiguration",
        "ObjectLockEnabled",
        "ObjectLockConfiguration",
    }
)

# ------------------------------------------------------------------ DynamoDB

_INDEX_KEYS: Final = {
    "IndexName": "IndexName",
    "KeySchema": "KeySchema",
    "Projection": "Projection",
    "ProvisionedThroughput": "ProvisionedThroughput",
}


def _create_table(clients: _Clients, name: str, props: Mapping[str, Any]) -> None:
    dynamodb = clients.dynamodb
    request: dict[str, Any] = {"TableName": name}
    for key, value in props.items():
        match key:
            case "KeySchema" | "AttributeDefinitions" | "BillingMode" | "ProvisionedThroughput":
                request[key] = value
            case "GlobalSecondaryIndexes" | "LocalSecondaryIndexes":
                request[key] = [_pick(index, _INDEX_KEYS, f"{key} entry") for index in value]
            case "SSESpecification":
                sse = _pick(
                    value,
                    {"SSEEnabled": "Enabled", "SSEType": "SSEType", "KMSMasterKeyId": "KMSMasterKeyId"},
                    "SSESpecification",
                )
                request[key] = sse
            case "StreamSpecification":
                request[key] = {"StreamEnabled": True, "StreamViewType": value["StreamViewType"]}
    dynamodb.create_table(**request)
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    if "TimeToLiveSpecification" in props:
        ttl = props["TimeToLiveSpecification"]
        dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": bool(ttl["Enabled"])},
        )
    if "PointInTimeRecoverySpecification" in props:
        enabled = bool(props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"])
        dynamodb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": enabled}
        )


_TABLE_PROPERTIES: Final = frozenset(
    {
        "TableName",
        "KeySchema",
        "AttributeDefinitions",
        "BillingMode",
        "ProvisionedThroughput",
        "GlobalSecondaryIndexes",
        "LocalSecondaryIndexes",
        "SSESpecification",
        "StreamSpecification",
        "TimeToLiveSpecification",
        "PointInTimeRecoverySpecification",
    }
)

# ------------------------------------------------------------------ SQS

# CloudFormation's queue properties that are SQS attributes of the same name.
_QUEUE_ATTRIBUTES: Final = frozenset(
    {
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "DelaySeconds",
        "FifoQueue",
        "FifoThroughputLimit",
        "KmsDataKeyReusePeriodSeconds",
        "KmsMasterKeyId",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "ReceiveMessageWaitTimeSeconds",
        "RedriveAllowPolicy",
        "RedrivePolicy",
        "SqsManagedSseEnabled",
        "VisibilityTimeout",
    }
)


def _attribute_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _create_queue(clients: _Clients, name: str, props: Mapping[str, Any]) -> str:
    attributes = {key: _attribute_text(value) for key, value in props.items() if key in _QUEUE_ATTRIBUTES}
    if attributes.get("FifoQueue") == "true" and not name.endswith(".fifo"):
        name += ".fifo"
    typed = cast("dict[QueueAttributeNameType, str]", attributes)
    return clients.sqs.create_queue(QueueName=name, Attributes=typed)["QueueUrl"]


_QUEUE_PROPERTIES: Final = _QUEUE_ATTRIBUTES | {"QueueName"}

# ------------------------------------------------------------------ the template's resources

_Creator = Callable[[_Clients, str, Mapping[str, Any]], str]


def _returning_name(create: Callable[[_Clients, str, Mapping[str, Any]], None]) -> _Creator:
    def created(clients: _Clients, name: str, props: Mapping[str, Any]) -> str:
        create(clients, name, props)
        return name

    return created


# Resource type -> (handled properties, creator returning the physical id, i.e. what `Ref` gives).
_PROVISIONERS: Final[dict[str, tuple[frozenset[str], _Creator]]] = {
    "AWS::S3::Bucket": (_BUCKET_PROPERTIES, _returning_name(_create_bucket)),
    "AWS::DynamoDB::Table": (_TABLE_PROPERTIES, _returning_name(_create_table)),
    "AWS::SQS::Queue": (_QUEUE_PROPERTIES, _create_queue),
}


def _references(value: Any) -> Iterator[str]:
    """Logical ids a value refers to through Ref, Fn::GetAtt and Fn::Sub."""
    if isinstance(value, list):
        for item in value:
            yield from _references(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str):
                yield item
            elif key == "Fn::GetAtt":
                yield (item.split(".", 1)[0] if isinstance(item, str) else str(item[0]))
            elif key == "Fn::Sub":
                text = item[0] if isinstance(item, list) else item
                for name in str(text).split("${")[1:]:
                    yield name.split("}", 1)[0].split(".", 1)[0]
                yield from _references(item[1] if isinstance(item, list) else [])
            else:
                yield from _references(item)


def _creation_order(resources: Mapping[str, Any], logical_ids: list[str]) -> list[str]:
    """The logical ids, each after the resources it refers to (template order otherwise)."""
    wanted = set(logical_ids)
    needs: dict[str, set[str]] = {}
    for logical_id in logical_ids:
        resource = resources[logical_id]
        depends = resource.get("DependsOn") or []
        refs = set(_references(resource.get("Properties") or {}))
        refs |= {depends} if isinstance(depends, str) else set(depends)
        needs[logical_id] = (refs & wanted) - {logical_id}
    ordered: list[str] = []
    while needs:
        ready = [logical_id for logical_id, deps in needs.items() if not deps - set(ordered)]
        if not ready:
            raise TemplateError(f"circular references between {', '.join(sorted(needs))}")
        for logical_id in ready:
            ordered.append(logical_id)
            del needs[logical_id]
    return ordered


def _check_properties(logical_id: str, kind: str, props: Mapping[str, Any]) -> None:
    handled, _ = _PROVISIONERS[kind]
    unknown = sorted(set(props) - handled - IGNORABLE_PROPERTIES.get(kind, frozenset()))
    if unknown:
        raise TemplateError(
            f"{logical_id} ({kind}): properties not supported by the local stack: {', '.join(unknown)}; "
            "provision them in devstack/aws.py or list them in IGNORABLE_PROPERTIES"
        )


def _selected_resources(resources: Mapping[str, Any], resolver: Resolver) -> list[str]:
    """The resources the local stack creates (of a kind it provisions, their Condition true), each
    checked for properties it cannot provision before anything is created."""
    selected = [
        logical_id
        for logical_id, resource in resources.items()
        if resource.get("Type") in _PROVISIONERS
        and ("Condition" not in resource or resolver.condition(str(resource["Condition"])))
    ]
    for logical_id in selected:
        _check_properties(
            logical_id, resources[logical_id]["Type"], resources[logical_id].get("Properties") or {}
        )
    return selected


def _create(
    clients: _Clients, resolver: Resolver, logical_id: str, resource: Mapping[str, Any], stack_name: str
) -> None:
    """Create one resource from its resolved Properties; its physical id goes to the resolver."""
    kind = resource["Type"]
    props = resolver.resolve(resource.get("Properties") or {})
    props = {} if props is NO_VALUE else props
    name = str(props.pop(_NAME_PROPERTIES[kind], None) or f"{stack_name}-{logical_id.lower()}")
    _, create = _PROVISIONERS[kind]
    try:
        resolver.physical_ids[logical_id] = create(clients, name, props)
    except TemplateError as exc:
        raise TemplateError(f"{logical_id} ({kind}): {exc}") from exc


def provision(
    endpoint_url: str,
    template: Mapping[str, Any],
    *,
    stack_name: str = DEFAULT_STACK_NAME,
    parameter_overrides: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    environment: Mapping[str, str] | None = None,
) -> LocalStack:
    """Create the template's buckets, tables and queues (and the given secrets) in the emulator.

    The template's Rules are checked first, as CloudFormation does: a parameter combination it would
    refuse raises `TemplateError` before anything is created.

    Each resource is created from its own Properties, after the resources it refers to; physical
    names are `<stack_name>-<logical id in lower case>` unless the template names it. A property the
    local stack does not provision and does not list as ignorable raises `TemplateError` before
    anything is created. `secrets` maps a secret id (the value of a template parameter such as
    KieApiKeySecretId) to its value. `environment` sets variables over the template's: what only a
    local run may set, such as COPY_MODE and ALLOW_LOCAL_SOURCES, which the template fixes for every
    deployed stack. Never reaches real AWS: every client uses `endpoint_url`.
    """
    resources: dict[str, Any] = dict(template.get("Resources") or {})
    resolver = Resolver(template, parameter_overrides, stack_name=stack_name)
    resolver.check_rules()
    selected = _selected_resources(resources, resolver)
    clients = _clients(endpoint_url)
    for logical_id in _creation_order(resources, selected):
        _create(clients, resolver, logical_id, resources[logical_id], stack_name)
    physical_ids = dict(resolver.physical_ids)
    for secret_id, value in (secrets or {}).items():
        clients.secretsmanager.create_secret(Name=secret_id, SecretString=value)
        physical_ids.update(
            (name, secret_id) for name, given in resolver.parameters.items() if given == secret_id
        )

    env = function_environment(template, resolver.parameters, resolver.physical_ids, stack_name=stack_name)
    recording = aws_calls.recorder()
    if recording is not None:  # the IAM check resolves this stack's roles from it
        recording.note_stack(endpoint_url, resolver.parameters, physical_ids)
    return LocalStack(
        physical_ids=physical_ids,
        env={**env, **(environment or {}), **aws_environment(endpoint_url)},
        parameters=dict(resolver.parameters),
    )


# ------------------------------------------------------------------ watching the events

# The rule and queue that stand for a user's subscription to kie2s3's events on the local stack.
LOCAL_EVENTS_NAME: Final = "kie2s3-local-events"
# The event pattern of every kie2s3 event (docs/events.md).
KIE2S3_EVENTS_PATTERN: Final = {"source": ["kie2s3"]}


def observe_events(endpoint_url: str, bus_name: str, *, name: str = LOCAL_EVENTS_NAME) -> str:
    """Subscribe an SQS queue to kie2s3's events on the bus, as a user's rule would; its URL.

    The bus is created unless it is `default` (every account has that one; the template expects the
    bus it names to exist). moto delivers each PutEvents entry a rule matches to its SQS targets at
    once, inside the PutEvents call: once the stream is drained, the queue holds every event.
    """
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    events = session.client("events", endpoint_url=endpoint_url)
    sqs = session.client("sqs", endpoint_url=endpoint_url)
    if bus_name != "default":
        with contextlib.suppress(events.exceptions.ResourceAlreadyExistsException):
            events.create_event_bus(Name=bus_name)
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name=name, EventBusName=bus_name, EventPattern=json.dumps(KIE2S3_EVENTS_PATTERN))
    events.put_targets(Rule=name, EventBusName=bus_name, Targets=[{"Id": "local-queue", "Arn": queue_arn}])
    return queue_url
