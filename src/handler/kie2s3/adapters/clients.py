"""Clients built once per container; endpoints come only from boto3's standard AWS_ENDPOINT_URL* variables."""

import os
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from kie2s3.adapters.safe_http import SafePoolManager
from kie2s3.retries import AWS_ATTEMPTS
from kie2s3.sources import SourcePolicy

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_secretsmanager.client import SecretsManagerClient
    from mypy_boto3_sqs.client import SQSClient

# Enough connections for every part in flight plus the ledger's and the archive's calls.
MAX_POOL_CONNECTIONS = 32
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": AWS_ATTEMPTS},  # the budget: kie2s3/retries.py
    connect_timeout=5,
    read_timeout=60,
    max_pool_connections=MAX_POOL_CONNECTIONS,
)


# Every body S3 gets carries a checksum S3 verifies (SHA-256 or CRC32), so the SigV4 signature need
# not cover the payload too. botocore already skips payload signing for such requests over https;
# saying so explicitly spares a second SHA-256 pass over every byte on plain-http endpoints as well.
# Presigned links are SigV4 too (botocore would presign with SigV2, which newer regions refuse).
_S3_CONFIG = _CONFIG.merge(Config(s3={"payload_signing_enabled": False}, signature_version="s3v4"))


def _aws_environment() -> frozenset[tuple[str, str]]:
    """What boto3 reads from the environment to build a client: endpoints, region, credentials."""
    return frozenset((name, value) for name, value in os.environ.items() if name.startswith("AWS_"))


@lru_cache(maxsize=16)
def _built(
    service: str, config: Config, environment: frozenset[tuple[str, str]], resource: bool = False
) -> Any:
    """A client (or resource) of `service`, one per AWS environment: a container's never changes, so
    it has one of each; a local run that starts functions of other stacks in one process gets theirs."""
    del environment  # the cache key: boto3 reads the environment itself
    name: Any = service  # the stubs know each service by its literal name; the callers below are typed
    return boto3.resource(name, config=config) if resource else boto3.client(name, config=config)


def forget() -> None:
    """Drop every client built so far (a test that instruments one starts from a fresh client)."""
    _built.cache_clear()


def s3_client() -> "S3Client":
    """The S3 client of this container."""
    client: S3Client = _built("s3", _S3_CONFIG, _aws_environment())
    return client


def sqs_client() -> "SQSClient":
    """The SQS client of this container."""
    client: SQSClient = _built("sqs", _CONFIG, _aws_environment())
    return client


def dynamodb_resource() -> "DynamoDBServiceResource":
    """The DynamoDB resource of this container."""
    resource: DynamoDBServiceResource = _built("dynamodb", _CONFIG, _aws_environment(), resource=True)
    return resource


def dynamodb_client() -> "DynamoDBClient":
    """The low-level DynamoDB client (for Powertools' idempotency store)."""
    client: DynamoDBClient = _built("dynamodb", _CONFIG, _aws_environment())
    return client


def events_client() -> "EventBridgeClient":
    """The EventBridge client of this container (the ledger's events)."""
    client: EventBridgeClient = _built("events", _CONFIG, _aws_environment())
    return client


def secrets_client() -> "SecretsManagerClient":
    """The Secrets Manager client (for Powertools' secrets provider: on the default session, whose
    loaded models every client shares, instead of a session of its own)."""
    client: SecretsManagerClient = _built("secretsmanager", _CONFIG, _aws_environment())
    return client


@lru_cache(maxsize=1)
def http_pool(policy: SourcePolicy) -> SafePoolManager:
    """The HTTP pool for kie.ai and source hosts: certificates verified, no automatic retries, and
    connections only to addresses the source policy accepts (public ones; loopback when local)."""
    return SafePoolManager(policy, num_pools=16, maxsize=8, retries=False)
