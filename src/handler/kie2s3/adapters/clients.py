"""Clients built once per container; endpoints come only from boto3's standard AWS_ENDPOINT_URL* variables."""

from functools import lru_cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from kie2s3.adapters.safe_http import SafePoolManager
from kie2s3.sources import SourcePolicy

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_sqs.client import SQSClient

# Enough connections for every part in flight plus the ledger's and the archive's calls.
MAX_POOL_CONNECTIONS = 32
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=60,
    max_pool_connections=MAX_POOL_CONNECTIONS,
)


@lru_cache(maxsize=1)
def s3_client() -> "S3Client":
    """The S3 client of this container."""
    return boto3.client("s3", config=_CONFIG)


@lru_cache(maxsize=1)
def sqs_client() -> "SQSClient":
    """The SQS client of this container."""
    return boto3.client("sqs", config=_CONFIG)


@lru_cache(maxsize=1)
def dynamodb_resource() -> "DynamoDBServiceResource":
    """The DynamoDB resource of this container."""
    return boto3.resource("dynamodb", config=_CONFIG)


@lru_cache(maxsize=1)
def dynamodb_client() -> "DynamoDBClient":
    """The low-level DynamoDB client (for Powertools' idempotency store)."""
    return boto3.client("dynamodb", config=_CONFIG)


@lru_cache(maxsize=1)
def http_pool(policy: SourcePolicy) -> SafePoolManager:
    """The HTTP pool for kie.ai and source hosts: certificates verified, no automatic retries, and
    connections only to addresses the source policy accepts (public ones; loopback when local)."""
    return SafePoolManager(policy, num_pools=16, maxsize=8, retries=False)
