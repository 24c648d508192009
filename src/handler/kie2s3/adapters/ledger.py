"""The tasks ledger in DynamoDB: one item per task (sk "TASK"), one per file (sk "FILE#00000"), one
marker per file source (sk "SOURCE#<sha256 of its canonical URL>") that makes the source unique, and,
once a task is taken down, the keys its files had (sk "TAKEDOWN#00000", as many as they need)."""

import hashlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import BotoCoreError, ClientError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from kie2s3.errors import RetryableError
from kie2s3.models import CopyResult, FileItem, FileState, Outcome, TaskItem
from kie2s3.ports import OPEN_FILE, OPEN_TASK, FileChange, TaskChange, now_iso
from kie2s3.retries import FENCE_ATTEMPTS, FENCE_PAUSE_SECONDS

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

TASK_SK = "TASK"
FILE_SK_PREFIX = "FILE#"
SOURCE_SK_PREFIX = "SOURCE#"
# One delivery plans at most this many files (models.MAX_URLS_PER_REQUEST): add_files takes as many.
MAX_FILES_PER_WRITE = 50
# DynamoDB TransactWriteItems takes at most 100 actions: 49 files, each with its source marker, and
# the check that the task is not taken down.
MAX_FILES_PER_TRANSACTION = 49
# The sparse `open-items` index (template.yaml): an item carries `open` only while unfinished.
OPEN_INDEX = "open-items"
_OPEN_FILE_STATES = frozenset({"pending", "copying"})
TAKEDOWN_SK_PREFIX = "TAKEDOWN#"
# The reason a task taken down gives (its status is `ignored`; design.md, Contract additions 2026-12).
TAKEN_DOWN = "taken down"
# DynamoDB's item size limit is 400 KB, names and values counted: the keys a takedown keeps are split
# over as many items as need be, each holding at most this many bytes of keys (S3 keys are ≤ 1,024 bytes).
TAKEDOWN_KEY_BYTES_PER_ITEM = 300_000
# The task attribute that fences a task off: set by a takedown, checked by every write that creates.
TAKEN_DOWN_AT = "taken_down_at"


def file_sk(index: int) -> str:
    """The sort key of a file item; zero-padded so a query returns files in order."""
    return f"{FILE_SK_PREFIX}{index:05d}"


def source_sk(source: str) -> str:
    """The sort key of a source's marker: a fixed-length digest of the canonical URL."""
    return f"{SOURCE_SK_PREFIX}{hashlib.sha256(source.encode()).hexdigest()}"


def takedown_sk(chunk: int) -> str:
    """The sort key of one item of the keys a takedown keeps."""
    return f"{TAKEDOWN_SK_PREFIX}{chunk:05d}"


def key_chunks(keys: Sequence[str], budget: int = TAKEDOWN_KEY_BYTES_PER_ITEM) -> list[list[str]]:
    """The keys, in order, split into lists of at most `budget` bytes (UTF-8) each; none for none."""
    chunks: list[list[str]] = []
    size = budget + 1
    for key in keys:
        length = len(key.encode())
        if size + length > budget:
            chunks.append([])
            size = 0
        chunks[-1].append(key)
        size += length
    return chunks


def not_taken_down(table_name: str, task_id: str, *, serialized: bool = True) -> dict[str, Any]:
    """A TransactWriteItems ConditionCheck that fails once the task is taken down: a write that opens
    work on a task (a copy's record, its file items) shares its request with it (no read of its own).
    A task the ledger does not know passes. `serialized`: the low-level client's form of the key,
    else the Python values a resource's client takes."""
    key = {"pk": {"S": task_id}, "sk": {"S": TASK_SK}} if serialized else {"pk": task_id, "sk": TASK_SK}
    return {
        "ConditionCheck": {
            "TableName": table_name,
            "Key": key,
            "ConditionExpression": "attribute_not_exists(#taken_down_at)",
            "ExpressionAttributeNames": {"#taken_down_at": TAKEN_DOWN_AT},
        }
    }


def fenced(send: Callable[[], Any]) -> Any:
    """Send a transaction that checks a task's fence (`not_taken_down`), again when DynamoDB cancels
    it for a conflict: transactions that include the same item cancel each other (TransactionConflict),
    and every fenced one includes its task's item, so the copies of one task's files, opening
    together, meet there. FENCE_ATTEMPTS tries with a short random pause between (kie2s3/retries.py);
    any other failure raises at once."""
    return Retrying(
        retry=retry_if_exception(_conflicted),
        wait=wait_random_exponential(multiplier=FENCE_PAUSE_SECONDS),
        stop=stop_after_attempt(FENCE_ATTEMPTS),
        sleep=time.sleep,
        reraise=True,
    )(send)


def _conflicted(exc: BaseException) -> bool:
    """Whether a transaction was cancelled only for meeting another one (no condition failed)."""
    if not isinstance(exc, ClientError):
        return False
    if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return False
    codes = {str(r.get("Code")) for r in exc.response.get("CancellationReasons") or []}
    return "TransactionConflict" in codes and "ConditionalCheckFailed" not in codes


@contextmanager
def _translated(action: str, *, tolerate_condition: bool = False) -> Iterator[None]:
    """Turn DynamoDB faults into RetryableError; a failed condition passes silently when tolerated."""
    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if tolerate_condition and code == "ConditionalCheckFailedException":
            return
        raise RetryableError(f"ledger {action} failed: {code}") from exc
    except BotoCoreError as exc:
        raise RetryableError(f"ledger {action} failed: {type(exc).__name__}") from exc


def _update(fields: dict[str, Any], *also_set: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """An UpdateExpression that sets each field, or removes it when its value is None (plus `also_set`)."""
    sets = {k: v for k, v in fields.items() if v is not None}
    removes = [k for k, v in fields.items() if v is None]
    expression = "SET " + ", ".join([*(f"#{k} = :{k}" for k in sets), *also_set])
    if removes:
        expression += " REMOVE " + ", ".join(f"#{k}" for k in removes)
    return expression, {f"#{k}": k for k in fields}, {f":{k}": v for k, v in sets.items()}


def _plain(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in ("pk", "sk")}


def stream_change(
    keys: Mapping[str, Any], old_image: Mapping[str, Any], new_image: Mapping[str, Any]
) -> FileChange | TaskChange | None:
    """What one record of the ledger's stream (NEW_AND_OLD_IMAGES, images deserialized; empty when
    absent) says changed; None for a source marker. An image holding only its keys counts as absent."""
    task_id, sort_key = str(keys["pk"]), str(keys["sk"])
    if sort_key == TASK_SK:
        return TaskChange(task_id, _plain(old_image) or None, _plain(new_image) or None)
    if sort_key.startswith(FILE_SK_PREFIX):
        after = FileItem.model_validate(_plain(new_image)) if "state" in new_image else None
        return FileChange(task_id, old_image.get("state"), after)
    return None


# The family of a task item that is only a takedown's fence (no callback recorded it): the name the
# parsers give a body no family claims (kie2s3.families.base.UNKNOWN; adapters import no families).
FENCE_FAMILY = "unknown"


class Ledger:
    """What kie2s3 knows of each task and file. Reads are strongly consistent.

    File items are created once (a repeated callback never resets a copied file), then only
    updated; a task's outcome moves to `success` and never back (a late intermediate stage or a
    duplicate failure callback cannot hide files already archived), and from any final outcome
    never back to not final or unrecognised (kie.ai's callbacks arrive out of order).
    """

    def __init__(self, table: "Table") -> None:
        self._table = table

    def save_task(self, task: TaskItem) -> None:
        """Create or update the task item (keeping its first created_at)."""
        fields: dict[str, Any] = {
            "task_id": task.task_id,
            "family": task.family,
            "outcome": task.outcome.value,
            "reason": task.reason,
            "file_count": task.file_count,
            "updated_at": task.updated_at,
            # Still running at kie.ai (polled), or unrecognised (replayed once a parser knows it).
            "open": OPEN_TASK if task.outcome in (Outcome.NOT_FINAL, Outcome.UNRECOGNISED) else None,
        }
        if task.files_not_planned:  # kept once recorded: a later, shorter delivery does not undo it
            fields["files_not_planned"] = task.files_not_planned
        kept = ["#created_at = if_not_exists(#created_at, :updated_at)"]
        if task.model:  # the first model named is kept: a delivery without one never removes it
            kept.append("#model = if_not_exists(#model, :model)")
        update, names, values = _update(fields, *kept)
        names["#created_at"] = "created_at"
        if task.model:
            names["#model"] = "model"
            values[":model"] = task.model
        # A task taken down is never recorded again (make takedown).
        names["#taken_down_at"] = TAKEN_DOWN_AT
        condition = "attribute_not_exists(#taken_down_at)"
        # Success is never undone; a final outcome never goes back to not final (Outcome.final).
        kept_outcomes = [o for o in Outcome if o.final] if not task.outcome.final else [Outcome.SUCCESS]
        if task.outcome is not Outcome.SUCCESS:
            placeholders = [f":kept_{o.value}" for o in kept_outcomes]
            values.update({p: o.value for p, o in zip(placeholders, kept_outcomes, strict=True)})
            condition += (
                f" AND (attribute_not_exists(#outcome) OR NOT #outcome IN ({', '.join(placeholders)}))"
            )
        with _translated("task write", tolerate_condition=True):
            self._table.update_item(
                Key={"pk": task.task_id, "sk": TASK_SK},
                UpdateExpression=update,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ConditionExpression=condition,
            )

    def add_files(self, items: Sequence[FileItem]) -> int:
        """Create the files of one task, each with its source marker, unless the task is taken down;
        how many were created, from the first: fewer than all when one exists or the task was
        taken down.

        One transaction per MAX_FILES_PER_TRANSACTION files, each checking the task's fence
        (`not_taken_down`): either every item and marker of it is written, or none is (a concurrent
        delivery claimed one of the indexes or sources first, or a takedown fenced the task: the
        caller reads the task again and re-plans).
        """
        if len(items) > MAX_FILES_PER_WRITE:
            raise ValueError(f"at most {MAX_FILES_PER_WRITE} files are created at once")
        for start in range(0, len(items), MAX_FILES_PER_TRANSACTION):
            if not self._add_files(items[start : start + MAX_FILES_PER_TRANSACTION]):
                return start
        return len(items)

    def _add_files(self, items: Sequence[FileItem]) -> bool:
        table = self._table.name
        writes: list[dict[str, Any]] = [not_taken_down(table, items[0].task_id, serialized=False)]
        for item in items:
            record = {"pk": item.task_id, "sk": file_sk(item.index), **item.model_dump(exclude_none=True)}
            if item.state in _OPEN_FILE_STATES:
                record["open"] = OPEN_FILE
            marker = {"pk": item.task_id, "sk": source_sk(item.source), "index": item.index}
            writes += [
                {"Put": {"TableName": table, "Item": put, "ConditionExpression": "attribute_not_exists(pk)"}}
                for put in (record, marker)
            ]
        with _translated("file write"):
            try:
                # The resource's own client takes Python values, as the table does (the stubs type it low-level).
                fenced(lambda: self._table.meta.client.transact_write_items(TransactItems=writes))  # type: ignore[arg-type]
            except ClientError as exc:
                reasons = exc.response.get("CancellationReasons") or []
                if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                    return False
                raise
        return True

    def mark_pending(
        self, task_id: str, index: int, *, error: str | None = None, source_url: str | None = None
    ) -> bool:
        """The file waits for a (new) copy job, with the reason it is not copied yet and, when a new
        delivery named it again, the full URL to copy it from; False when it is `copied` already."""
        fields: dict[str, Any] = {"state": "pending", "error": error}
        if source_url is not None:
            fields["source_url"] = source_url
        return self._update_file(task_id, index, fields)

    def mark_failed(self, task_id: str, index: int, error: str) -> bool:
        """The file will not be copied, for this reason; False when it is `copied` already."""
        return self._update_file(task_id, index, {"state": "failed", "error": error})

    def touch_file(self, task_id: str, index: int, state: FileState) -> bool:
        """Move an unfinished file to the back of the reconciler's line, in the state it is in."""
        return self._update_file(task_id, index, {"state": state})

    def mark_copied(self, task_id: str, index: int, result: CopyResult) -> bool:
        """The file is archived: where, how big, its SHA-256 and Content-Type (written again over a
        `copied` item); False when the file has no item (unknown, or its task taken down)."""
        return self._update_file(
            task_id,
            index,
            {
                "state": "copied",
                "bucket": result.bucket,
                "key": result.key,
                "bytes": result.bytes,
                "sha256": result.sha256,
                "content_type": result.content_type,
                "source_unstable": result.source_unstable,
                "error": None,
            },
            unless_copied=False,
        )

    def _update_file(
        self, task_id: str, index: int, fields: dict[str, Any], *, unless_copied: bool = True
    ) -> bool:
        """Set the fields of a file item (None removes the attribute); False when nothing changed.

        `unless_copied` leaves a file already `copied` untouched (a late or duplicate delivery must
        never move an archived file back to copying, pending or failed). A missing item is never
        created: nothing changes.
        """
        fields["updated_at"] = now_iso()
        if "state" in fields:
            fields["open"] = OPEN_FILE if fields["state"] in _OPEN_FILE_STATES else None
        expression, names, values = _update(fields)
        names["#state"] = "state"
        condition = "attribute_exists(pk)"
        if unless_copied:
            condition += " AND #state <> :copied"
            values[":copied"] = "copied"
        with _translated("file update", tolerate_condition=True):
            self._table.update_item(
                Key={"pk": task_id, "sk": file_sk(index)},
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ConditionExpression=condition,
            )
            return True
        return False

    def file(self, task_id: str, index: int) -> FileItem | None:
        """One file of a task (one strongly consistent read), or None when the ledger has no such item."""
        with _translated("read"):
            found = self._table.get_item(Key={"pk": task_id, "sk": file_sk(index)}, ConsistentRead=True)
        item = found.get("Item")
        return FileItem.model_validate(_plain(item)) if item else None

    def open_items(self, kind: str, updated_before: str, limit: int = 100) -> list[dict[str, Any]]:
        """Unfinished files (`OPEN_FILE`) or tasks (`OPEN_TASK`) last updated before a time, oldest first."""
        with _translated("open-items read"):
            page = self._table.query(
                IndexName=OPEN_INDEX,
                KeyConditionExpression=Key("open").eq(kind) & Key("updated_at").lt(updated_before),
                Limit=limit,
            )
        return [_plain(i) for i in page.get("Items", [])]

    def touch_task(self, task_id: str) -> None:
        """Move an open task to the back of the reconciler's line."""
        with _translated("task touch", tolerate_condition=True):
            self._table.update_item(
                Key={"pk": task_id, "sk": TASK_SK},
                UpdateExpression="SET updated_at = :now",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":now": now_iso()},
            )

    def close_task(self, task_id: str, reason: str) -> None:
        """Stop following a task that will never finish here (e.g. past kie.ai's retention). A task
        taken down meanwhile keeps its reason (and one the ledger does not hold is not created)."""
        with _translated("task close", tolerate_condition=True):
            self._table.update_item(
                Key={"pk": task_id, "sk": TASK_SK},
                UpdateExpression="SET #reason = :reason, updated_at = :now REMOVE #open",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#taken_down_at)",
                ExpressionAttributeNames={
                    "#open": "open",
                    "#reason": "reason",
                    "#taken_down_at": TAKEN_DOWN_AT,
                },
                ExpressionAttributeValues={":reason": reason, ":now": now_iso()},
            )

    def taken_down(self, task_id: str) -> bool:
        """Whether the task was taken down (one strongly consistent read of its item)."""
        with _translated("read"):
            found = self._table.get_item(
                Key={"pk": task_id, "sk": TASK_SK}, ProjectionExpression=TAKEN_DOWN_AT, ConsistentRead=True
            )
        return TAKEN_DOWN_AT in found.get("Item", {})

    def mark_taken_down(self, task_id: str, keys: Sequence[str]) -> bool:
        """Mark a task taken down, and keep the keys its files had (with those an earlier takedown
        kept) in items of their own, however many: a second takedown removes them again (versions
        Object Lock kept). A task not recorded yet gets a task item that is only the fence
        (family `unknown`, outcome `unrecognised`, no files). From then on nothing records, plans
        or opens a copy of it (`not_taken_down`). True once marked."""
        with _translated("takedown"):
            self._table.update_item(
                Key={"pk": task_id, "sk": TASK_SK},
                UpdateExpression="SET #taken_down_at = :now, updated_at = :now, #reason = :reason,"
                " #task_id = :task_id, #family = if_not_exists(#family, :family),"
                " #outcome = if_not_exists(#outcome, :outcome),"
                " #created_at = if_not_exists(#created_at, :now)"
                " REMOVE #open, taken_down_keys",
                ExpressionAttributeNames={
                    "#open": "open",
                    "#reason": "reason",
                    "#taken_down_at": TAKEN_DOWN_AT,
                    "#task_id": "task_id",
                    "#family": "family",
                    "#outcome": "outcome",
                    "#created_at": "created_at",
                },
                ExpressionAttributeValues={
                    ":now": now_iso(),
                    ":reason": TAKEN_DOWN,
                    ":task_id": task_id,
                    ":family": FENCE_FAMILY,
                    ":outcome": Outcome.UNRECOGNISED.value,
                },
            )
            self._keep_keys(task_id, keys)
        return True

    def _keep_keys(self, task_id: str, keys: Sequence[str]) -> None:
        """Write the keys over the task's TAKEDOWN# items, and remove those left over from a longer list."""
        chunks = key_chunks(sorted(set(keys)))
        stale = [i["sk"] for i in self._items(task_id, "pk, sk") if i["sk"].startswith(TAKEDOWN_SK_PREFIX)]
        with self._table.batch_writer() as batch:
            for n, chunk in enumerate(chunks):
                batch.put_item(Item={"pk": task_id, "sk": takedown_sk(n), "keys": chunk})
            for sort_key in stale[len(chunks) :]:
                batch.delete_item(Key={"pk": task_id, "sk": sort_key})

    def delete_files(self, task_id: str) -> int:
        """Delete the task's file items and source markers (every page of them); how many. The task's
        own item and the keys its takedown keeps stay."""
        with _translated("takedown"):
            doomed = [
                i["sk"]
                for i in self._items(task_id, "pk, sk")
                if i["sk"].startswith((FILE_SK_PREFIX, SOURCE_SK_PREFIX))
            ]
            with self._table.batch_writer() as batch:
                for sort_key in doomed:
                    batch.delete_item(Key={"pk": task_id, "sk": sort_key})
        return len(doomed)

    def get(self, task_id: str) -> tuple[TaskItem, list[FileItem]] | None:
        """The task (with the keys a takedown kept) and its files in index order, or None for an
        unknown task."""
        with _translated("read"):
            items = list(self._items(task_id))
        task = next((i for i in items if i["sk"] == TASK_SK), None)
        if task is None:
            return None
        files = [FileItem.model_validate(_plain(i)) for i in items if i["sk"].startswith(FILE_SK_PREFIX)]
        # The version before kept them on the task item itself: read both, until a takedown moves them.
        kept = [*task.get("taken_down_keys", [])]
        kept += [key for i in items if i["sk"].startswith(TAKEDOWN_SK_PREFIX) for key in i["keys"]]
        return TaskItem.model_validate({**_plain(task), "taken_down_keys": kept}), files

    def _items(self, task_id: str, projection: str | None = None) -> Iterator[dict[str, Any]]:
        """Every item of the task, in sort key order: the one query of a task's items, following each
        page (DynamoDB returns at most 1 MB of whole items per page, projected or not)."""
        query: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(task_id), "ConsistentRead": True}
        if projection:
            query["ProjectionExpression"] = projection
        while True:
            page = self._table.query(**query)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
