"""Powertools Idempotency on DynamoDB: one copy of a file at a time, and a finished copy never repeated."""

import time
from abc import abstractmethod
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools.utilities.idempotency import (
    BasePersistenceLayer,
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyInconsistentStateError,
    IdempotencyPersistenceLayerError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import STATUS_CONSTANTS, DataRecord
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from kie2s3.adapters.ledger import fenced, not_taken_down
from kie2s3.errors import RetryableError, TakenDownError
from kie2s3.models import CopyJob, Guarded, TransferResult

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

# kie.ai keeps files 14 days (kie-api.md §4.5): a repeat within that window is answered from the record.
EXPIRES_AFTER_SECONDS = 14 * 24 * 3600
# The key is the file, never the SQS message: a duplicate message or callback maps to the same record.
JOB_KEY = "[task_id, index]"
# Every record's key starts with this, not with the Lambda function's name (Powertools' default):
# the API (inline mode), the reconciler and the worker share one record per file, and the status
# document finds it from the task id and index alone.
KEY_PREFIX = "kie2s3.copy"
# DynamoDB BatchGetItem reads at most 100 items per request.
MAX_KEYS_PER_READ = 100
# Lambda's longest timeout: no in-progress lock outlives it (Powertools sets the lock's expiry from
# the invocation's remaining time).
MAX_LOCK_SECONDS = 900
# The task whose copy record is being opened in this thread (the opening write is fenced on it).
_OPENING: ContextVar[str | None] = ContextVar("kie2s3_opening_task", default=None)


class CopyRecords(BasePersistenceLayer):
    """A Powertools persistence layer that can also read many records at once (for status), and
    whose write opening a copy (the in-progress record) knows the copy's task, to fence it."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Powertools' base __init__ is unannotated

    def save_inprogress(self, data: dict[str, Any], remaining_time_in_millis: int | None = None) -> None:
        token = _OPENING.set(str(data["task_id"]))
        try:
            super().save_inprogress(data, remaining_time_in_millis)
        finally:
            _OPENING.reset(token)

    @staticmethod
    def opening_task() -> str | None:
        """The task of the copy whose in-progress record this thread is writing now, if any."""
        return _OPENING.get()

    @abstractmethod
    def get_records(self, keys: list[str]) -> list[DataRecord]:
        """The records with these idempotency keys that exist (at most MAX_KEYS_PER_READ keys)."""


class _FencedClient:
    """The DynamoDB client Powertools is given: the PutItem that opens a copy goes as a transaction
    with a check that the copy's task is not taken down — the same single round trip, fenced. Every
    other call passes through untouched."""

    def __init__(self, client: "DynamoDBClient", tasks_table: str) -> None:
        self._client = client
        self._tasks_table = tasks_table

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_item(self, **put: Any) -> Any:
        task_id = CopyRecords.opening_task()
        if task_id is None:
            return self._client.put_item(**put)
        try:
            return fenced(
                lambda: self._client.transact_write_items(
                    TransactItems=[{"Put": put}, not_taken_down(self._tasks_table, task_id)]  # type: ignore[list-item,typeddict-item]
                )
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons") or [{}, {}]
            if reasons[1].get("Code") == "ConditionalCheckFailed":
                raise TakenDownError("task taken down: nothing of it is copied again") from exc
            if reasons[0].get("Code") != "ConditionalCheckFailed":
                raise
            # The record exists: answer as PutItem does, so that Powertools reads it as usual.
            answer: dict[str, Any] = {
                "Error": {"Code": "ConditionalCheckFailedException", "Message": "exists"}
            }
            if "Item" in reasons[0]:
                answer["Item"] = reasons[0]["Item"]
            raise ClientError(answer, "PutItem") from exc  # type: ignore[arg-type]


class DynamoDBCopyRecords(DynamoDBPersistenceLayer, CopyRecords):
    """Powertools' DynamoDB layer (key attribute `id`), with one BatchGetItem for many records, and
    the opening write of a copy fenced on its task in the tasks ledger (`tasks_table`)."""

    def __init__(self, table_name: str, client: "DynamoDBClient", tasks_table: str) -> None:
        super().__init__(
            table_name=table_name, boto3_client=cast("DynamoDBClient", _FencedClient(client, tasks_table))
        )

    def get_records(self, keys: list[str]) -> list[DataRecord]:
        request: dict[str, Any] = {
            self.table_name: {"Keys": [self._get_key(k) for k in keys], "ConsistentRead": True}
        }
        items: list[dict[str, Any]] = []
        while request:  # DynamoDB may leave keys unprocessed under load: ask again for those
            answer = self.client.batch_get_item(RequestItems=request)
            items.extend(answer.get("Responses", {}).get(self.table_name, []))
            request = dict(answer.get("UnprocessedKeys") or {})
        return [self._item_to_data_record(item) for item in items]


def _copy(job: CopyJob, transfer: Callable[[], TransferResult], ran: list[TransferResult]) -> TransferResult:
    """What runs under the lock: the transfer, its result noted before Powertools records it."""
    result = transfer()
    ran.append(result)
    return result


class CopyGuard:
    """Wraps the copy of one file so that it runs at most once per (taskId, file index).

    A second delivery while the first runs is told `busy` (SQS delivers it again later; it then
    finds the stored result). A copy that raises leaves no record, so it can be tried again.
    An invocation killed mid-copy holds the lock only until its Lambda timeout would have passed
    (Powertools' in-progress expiry, from the registered Lambda context).
    """

    def __init__(self, records: CopyRecords) -> None:
        self._records = records
        self.config = IdempotencyConfig(
            event_key_jmespath=JOB_KEY,
            raise_on_no_idempotency_key=True,
            expires_after_seconds=EXPIRES_AFTER_SECONDS,
            use_local_cache=False,
        )
        # Configured now (Powertools would on the first copy), so status can compute keys at once.
        records.configure(self.config, key_prefix=KEY_PREFIX)
        self._guarded = cast(
            "Callable[..., TransferResult]",
            idempotent_function(
                _copy,
                data_keyword_argument="job",
                persistence_store=records,
                config=self.config,
                output_serializer=PydanticSerializer(model=TransferResult),
                key_prefix=KEY_PREFIX,
            ),
        )

    def register_lambda_context(self, context: LambdaContext) -> None:
        """Give the in-progress lock the invocation's deadline."""
        self.config.register_lambda_context(context)

    def run(self, job: CopyJob, transfer: Callable[[], TransferResult]) -> Guarded:
        """Run `transfer` under the file's lock, or answer from its record (see the class doc).

        The transfer's own errors pass through (its in-progress record removed); RetryableError
        when the idempotency table cannot be read or written before the transfer ran.
        """
        ran: list[TransferResult] = []
        try:
            result = self._guarded(job=job, transfer=transfer, ran=ran)
        except IdempotencyAlreadyInProgressError:
            return Guarded("busy")
        except (IdempotencyPersistenceLayerError, IdempotencyInconsistentStateError) as exc:
            if isinstance(exc.__cause__, TakenDownError):  # the opening write's fence held
                return Guarded("taken_down")
            if ran:  # the transfer finished; only the write of its success failed
                return Guarded("unrecorded", ran[0])
            raise RetryableError(f"idempotency store unavailable: {type(exc).__name__}") from exc
        return Guarded("ran" if ran else "repeated", result)

    def copying(self, task_id: str, indexes: Iterable[int]) -> set[int]:
        """The indexes of the task whose copy is under way or stored: an in-progress record not yet
        expired, or a completed one (status asks only of files the ledger still holds `pending`, so
        a completed record there is a stored copy whose recording in the ledger has not happened
        yet: the next delivery makes it from the record). One BatchGetItem per 100 files."""
        by_key = {self._key(task_id, index): index for index in indexes}
        now_ms = int(time.time() * 1000)
        return {
            by_key[r.idempotency_key] for r in self._read(task_id, by_key.values()) if _under_way(r, now_ms)
        }

    def _read(self, task_id: str, indexes: Iterable[int]) -> list[DataRecord]:
        """The records of these files that exist, MAX_KEYS_PER_READ per request."""
        keys = [self._key(task_id, index) for index in indexes]
        records: list[DataRecord] = []
        for start in range(0, len(keys), MAX_KEYS_PER_READ):
            try:
                records += self._records.get_records(keys[start : start + MAX_KEYS_PER_READ])
            except (ClientError, BotoCoreError) as exc:
                raise RetryableError(f"idempotency records unreadable: {type(exc).__name__}") from exc
        return records

    def in_flight(self, task_id: str, indexes: Iterable[int]) -> int | None:
        """When the last copy of these files now under way must have ended (its in-progress lock's
        expiry, epoch milliseconds; a lock without one, MAX_LOCK_SECONDS from now), or None when
        none is under way. One BatchGetItem per 100 files."""
        now_ms = int(time.time() * 1000)
        ends = [
            int(r.in_progress_expiry_timestamp or now_ms + MAX_LOCK_SECONDS * 1000)
            for r in self._read(task_id, indexes)
            if r.status == STATUS_CONSTANTS["INPROGRESS"] and _under_way(r, now_ms)
        ]
        return max(ends, default=None)

    def forget(self, job: CopyJob) -> None:
        """Remove the file's record (a copy stored for a file the ledger no longer has)."""
        try:
            self._records.delete_record(_data(job.task_id, job.index), RuntimeError("forgotten"))
        except (ClientError, BotoCoreError) as exc:
            raise RetryableError(f"idempotency record not removed: {type(exc).__name__}") from exc

    def _key(self, task_id: str, index: int) -> str:
        # Powertools' own derivation (prefix, JMESPath, hash) of the key a copy of this file writes.
        # JOB_KEY selects both fields, so there is always a key.
        return cast("str", self._records._get_hashed_idempotency_key(_data(task_id, index)))


def _data(task_id: str, index: int) -> dict[str, Any]:
    """The part of a job its idempotency key is made of (JOB_KEY)."""
    return {"task_id": task_id, "index": index}


def _under_way(record: DataRecord, now_ms: int) -> bool:
    if record.is_expired:
        return False
    if record.status == STATUS_CONSTANTS["COMPLETED"]:
        return True
    expiry = record.in_progress_expiry_timestamp
    return record.status == STATUS_CONSTANTS["INPROGRESS"] and (expiry is None or expiry >= now_ms)
