"""moto's server (`python -m devstack.moto_server -H host -p port`), with DynamoDB's requests and
S3's conditional writes made whole, and changes where moto's cost grows with everything the server
holds rather than with the request: how a DynamoDB transaction is rolled back, how S3 lists object
versions, a Query of one partition, ReceiveMessage's retention check; and the backend of a host
looked up once, the access log optional.

DynamoDB applies each request whole: a write is atomic with its condition, and a strongly consistent
read sees an item as it was before a write or after it, never in between (the Developer Guide,
"Working with items": every CRUD operation is atomic). moto's server answers each request in a
thread of its own, and its DynamoDB changes items in place, one action of an UpdateExpression after
another, with no lock: a Query could read a file item that an UpdateItem had made `copied`, with its
bucket and key, before it set its bytes (the soak, seed 3: a `Task Archived` event with `bytes`
null), and two conditional writes could both pass their condition. Here DynamoDB's requests, and
those of its Streams (whose records the writes make), run one at a time, each whole: answers
DynamoDB itself could give, never one it could not.

S3 applies a conditional write whole too: of two creates of one key with `If-None-Match: *`, one
stores its object and the other is refused (412 PreconditionFailed, or 409
ConditionalRequestConflict while the first is under way; the S3 User Guide, "Conditional writes").
moto's PutObject and CompleteMultipartUpload check that the key is absent, then write, with no lock:
two creates of one key could both succeed, the later overwriting the earlier, and kie2s3's
exactly-once rests on these creates. Here a conditional write (`If-None-Match` or `If-Match`) holds
its key's lock from its check to its answer, so the later one finds the key taken; unconditional
writes, parts and other keys are not held.

moto rolls a failed TransactWriteItems back by restoring a deep copy of every table the transaction
names, taken before it. That copy costs the size of the whole table (its DynamoDB stream included,
which is never trimmed locally) on every transaction, cancelled or not: kie2s3's copies open with a
transaction that names the tasks ledger (a check that their task is not taken down), so a long test
session copied the ledger once per file, and a burst of copies took the server past the machine's
memory. DynamoDB itself keeps no such copy. Here the transaction keeps instead what it can change:
the prior version of each item it writes and the length of each written table's stream; a
cancelled transaction puts those back (the same outcome as moto's: the items as they were, no
stream record of the cancelled writes), in the time of a few item copies.

moto's ListObjectVersions deep-copies every version of every key in the bucket, its bytes included,
before it filters them by prefix (the copies only get `is_latest` set on them): a takedown lists
the versions of each of a task's keys, and in a long test session the bucket holds gigabytes, so a
task of 150 files took the server past the machine's memory. Here those copies are views that share
the stored bytes: the same listing, at the cost of the versions' attributes.

moto's Query of a table (not of an index) sorts every item of the table, then keeps those of the
one partition key asked for: each read of a task's items cost the whole ledger, so a long soak slowed
as the ledger grew. Here such a query sorts only the items of its partition key (the same answer:
the others are dropped by moto's own filter that follows).

moto's ReceiveMessage checks each message it looks at against the queue's retention period by
building every attribute of the queue, whose approximate counts each scan the whole queue: a receive
cost the square of the queue's length, so reading a queue that had gathered a soak's events took
minutes. Here the check reads the retention period alone.

moto finds the backend of every request by listing its own package's directory (a `stat` of each of
its ~200 entries) and then matching the host against hundreds of URL patterns, all under one lock:
the answer depends on the host alone, so it is kept per host here. With KIE2S3_MOTO_ACCESS_LOG=0 the
server writes no access line per request (werkzeug's, through `logging`, with a flush each; a long
soak's millions of requests spent a good share of moto's CPU on it); warnings and tracebacks still go
to its log. The local stack keeps the lines (devstack.logs times other lines by them).
"""

import copy
import functools
import logging
import os
import sys
import threading
import types
import weakref
from collections.abc import Callable
from typing import Any

from moto.core.common_types import TYPE_RESPONSE
from moto.core.responses import BaseResponse
from moto.core.utils import unix_time
from moto.dynamodb import models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.s3 import models as s3_models
from moto.s3.responses import S3Response
from moto.server import main
from moto.sqs.models import Message, SQSBackend

ACCESS_LOG_ENV = "KIE2S3_MOTO_ACCESS_LOG"

# Held for the whole of each DynamoDB or DynamoDB Streams request: its condition, its changes, its
# stream records and its answer's serialisation (which reads the items it returns).
_DYNAMODB_REQUEST = threading.RLock()


def _whole(call_action: Callable[[Any], TYPE_RESPONSE]) -> Callable[[Any], TYPE_RESPONSE]:
    """A handler's call_action that runs while no other DynamoDB request runs."""

    @functools.wraps(call_action)
    def one_at_a_time(handler: BaseResponse) -> TYPE_RESPONSE:
        with _DYNAMODB_REQUEST:
            return call_action(handler)

    return one_at_a_time


DynamoHandler.call_action = _whole(DynamoHandler.call_action)  # type: ignore[method-assign]
DynamoDBStreamsHandler.call_action = _whole(DynamoDBStreamsHandler.call_action)  # type: ignore[method-assign,assignment]

# One lock per S3 key with a conditional write under way (a key's lock lives while a write holds it).
_S3_KEY_LOCKS: weakref.WeakValueDictionary[tuple[str, str], threading.Lock] = weakref.WeakValueDictionary()
_S3_KEY_LOCKS_GUARD = threading.Lock()


def _key_lock(bucket: str, key: str) -> threading.Lock:
    with _S3_KEY_LOCKS_GUARD:
        lock = _S3_KEY_LOCKS.get((bucket, key))
        if lock is None:
            lock = _S3_KEY_LOCKS[(bucket, key)] = threading.Lock()
        return lock


def _conditional_whole(write: Callable[..., TYPE_RESPONSE]) -> Callable[..., TYPE_RESPONSE]:
    """An S3 handler's write that, when it carries a condition, runs while no other conditional
    write of its key runs: its check and its write one step, as S3 makes them."""

    @functools.wraps(write)
    def check_and_write(handler: S3Response, *args: Any, **kwargs: Any) -> TYPE_RESPONSE:
        if not (handler.headers.get("If-None-Match") or handler.headers.get("If-Match")):
            return write(handler, *args, **kwargs)
        with _key_lock(handler.bucket_name, handler.parse_key_name()):
            return write(handler, *args, **kwargs)

    return check_and_write


# PutObject, and the POSTs on a key (CompleteMultipartUpload among them).
S3Response.put_object = _conditional_whole(S3Response.put_object)  # type: ignore[method-assign]
S3Response._key_response_post = _conditional_whole(S3Response._key_response_post)  # type: ignore[method-assign]


def _deepcopy_but_tables(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """copy.deepcopy, except that a table is its own "copy": transact_write_items' backup of a whole
    table (the only deep copy of a table in that module) is replaced by the backup of its items below."""
    return value if isinstance(value, Table) else copy.deepcopy(value, memo)


# The module's own name `copy` (moto calls copy.deepcopy through it), with deepcopy replaced.
models.copy = types.SimpleNamespace(**{**vars(copy), "deepcopy": _deepcopy_but_tables})  # type: ignore[attr-defined,assignment]


Saved = tuple[Table, DynamoType, DynamoType | None, Any]


def _written(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[Saved]:
    """Each item a transaction may write, with its version before the transaction (None: absent)."""
    saved: list[Saved] = []
    for entry in transact_items:
        kind, op = next(iter(entry.items()))
        table = backend.tables.get(op.get("TableName", ""))
        if table is None or kind == "ConditionCheck":
            continue
        key = op.get("Item") if kind == "Put" else op.get("Key")
        if not key or table.hash_key_attr not in key:
            continue  # moto refuses it before writing anything
        hash_key = DynamoType(key[table.hash_key_attr])
        range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr in key else None
        before = table.get_item(hash_key, range_key) if (range_key or not table.has_range_key) else None
        saved.append((table, hash_key, range_key, copy.deepcopy(before)))
    return saved


def _put_back(saved: list[Saved], streams: dict[int, tuple[Table, int]]) -> None:
    for table, hash_key, range_key, before in reversed(saved):
        if range_key is not None:
            if before is None:
                table.items[hash_key].pop(range_key, None)
            else:
                table.items[hash_key][range_key] = before
        elif before is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = before
    for table, length in streams.values():
        if table.stream_shard is not None:
            del table.stream_shard.items[length:]


_transact_write_items = DynamoDBBackend.transact_write_items


def _transact_write_items_keeping_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    saved = _written(self, transact_items)
    streams = {
        id(table): (table, len(table.stream_shard.items))
        for table, *_ in saved
        if table.stream_shard is not None
    }
    try:
        _transact_write_items(self, transact_items)
    except Exception:
        _put_back(saved, streams)
        raise


DynamoDBBackend.transact_write_items = _transact_write_items_keeping_items  # type: ignore[method-assign]


_VIEW_CLASSES: dict[type, type] = {}


def _view_class(kind: type) -> type:
    """A subclass of a version's class whose instances never dispose of anything: a FakeKey closes
    its bytes' buffer when it is garbage-collected, and a view shares that buffer with the object."""
    if kind not in _VIEW_CLASSES:
        _VIEW_CLASSES[kind] = type(
            f"{kind.__name__}View", (kind,), {"dispose": lambda self, garbage=False: None}
        )
    return _VIEW_CLASSES[kind]


def _views_of_versions(versions: list[Any], memo: dict[int, Any] | None = None) -> list[Any]:
    """What list_object_versions (the one deep copy in moto.s3.models) gets for a key's versions: a
    view of each, sharing its bytes (and never closing them), on which the listing may set `is_latest`."""
    views = []
    for version in versions:
        view: Any = object.__new__(_view_class(type(version)))
        view.__dict__.update(version.__dict__)
        views.append(view)
    return views


s3_models.copy = types.SimpleNamespace(**{**vars(copy), "deepcopy": _views_of_versions})  # type: ignore[attr-defined,assignment]

# The partition key a Query on this thread reads, while moto's Table.query runs (None: every item).
_query_scope = threading.local()
_all_items = Table.all_items
_query = Table.query


def _items_in_scope(self: Table) -> list[Any]:
    """Table.all_items, narrowed to the partition key of the Query under way on this thread."""
    scope = getattr(_query_scope, "partition", None)
    if scope is None or scope[0] is not self:
        return _all_items(self)
    found = self.items.get(scope[1])
    if found is None:
        return []
    if not self.range_key_attr:
        return [found]
    return sorted(found.values(), key=lambda item: item.range_key)


def _query_one_partition(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
    if index_name or hash_key is None:
        return _query(self, hash_key, *args, **kwargs)
    _query_scope.partition = (self, hash_key)
    try:
        return _query(self, hash_key, *args, **kwargs)
    finally:
        _query_scope.partition = None


Table.all_items = _items_in_scope  # type: ignore[method-assign]
Table.query = _query_one_partition  # type: ignore[method-assign]

_retention_check = SQSBackend.is_message_valid_based_on_retention_period


def _within_retention(self: SQSBackend, queue_name: str, message: Message) -> bool:
    """Whether the message is within its queue's retention period (moto's check, without the rest
    of the queue's attributes)."""
    retain_until = self.get_queue(queue_name).message_retention_period + message.sent_timestamp / 1000  # type: ignore[attr-defined,operator]
    return bool(retain_until > unix_time())


SQSBackend.is_message_valid_based_on_retention_period = _within_retention  # type: ignore[method-assign]

_get_backend_for_host = DomainDispatcherApplication.get_backend_for_host


@functools.cache
def _backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
    """The backend serving `host` (moto's answer, the same for every request to that host)."""
    return _get_backend_for_host(self, host)


DomainDispatcherApplication.get_backend_for_host = _backend_for_host  # type: ignore[method-assign]

if __name__ == "__main__":
    if os.environ.get(ACCESS_LOG_ENV) == "0":
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    main(sys.argv[1:])
