"""Powertools Idempotency on DynamoDB: one copy of a file at a time, and a finished copy never repeated."""

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
)
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer
from aws_lambda_powertools.utilities.typing import LambdaContext

from kie2s3.errors import CopyInProgressError, RetryableError
from kie2s3.models import CopyResult

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

# kie.ai keeps files 14 days (kie-api.md §4.5): a repeat within that window is answered from the record.
EXPIRES_AFTER_SECONDS = 14 * 24 * 3600
# The key is the file, never the SQS message: a duplicate message or callback maps to the same record.
JOB_KEY = "[task_id, index]"


class CopyGuard:
    """Wraps the copy of one file so that it runs at most once per (taskId, file index).

    A second delivery while the first runs gets RetryableError (SQS delivers it again later; it
    then finds the stored result). A copy that raises leaves no record, so it can be tried again.
    An invocation killed mid-copy holds the lock only until its Lambda timeout would have passed
    (Powertools' in-progress expiry, from the registered Lambda context).
    """

    def __init__(self, table_name: str, client: "DynamoDBClient") -> None:
        self._persistence = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=client)
        self.config = IdempotencyConfig(
            event_key_jmespath=JOB_KEY,
            raise_on_no_idempotency_key=True,
            expires_after_seconds=EXPIRES_AFTER_SECONDS,
            use_local_cache=False,
        )

    def register_lambda_context(self, context: LambdaContext) -> None:
        """Give the in-progress lock the invocation's deadline."""
        self.config.register_lambda_context(context)

    @cache  # noqa: B019 - one guard per container; the wrapped function is built once
    def _wrapped(self, function: Callable[..., CopyResult]) -> Callable[..., CopyResult]:
        wrapped: Callable[..., CopyResult] = idempotent_function(
            function,
            data_keyword_argument="job",
            persistence_store=self._persistence,
            config=self.config,
            output_serializer=PydanticSerializer(model=CopyResult),
        )
        return wrapped

    def run(self, function: Callable[..., CopyResult], **kwargs: Any) -> CopyResult:
        """Call `function(**kwargs)` (kwargs include `job`) under the guard."""
        try:
            return self._wrapped(function)(**kwargs)
        except IdempotencyAlreadyInProgressError as exc:
            raise CopyInProgressError("another delivery of this file is copying it now") from exc
        except IdempotencyPersistenceLayerError as exc:
            raise RetryableError(f"idempotency store unavailable: {type(exc).__name__}") from exc
