"""devstack.moto_server's changes to moto: the same answers as moto's own, at a cost that no longer
grows with what the server holds."""

from typing import Any

import pytest
from devstack import moto_server
from hypothesis import given, settings
from hypothesis import strategies as st
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.sqs.models import Queue, SQSBackend


def _ledger(items: list[tuple[str, str]]) -> Table:
    table = Table(
        "ledger",
        "123456789012",
        "us-east-1",
        schema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        attr=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
    )
    for pk, sk in items:
        table.put_item({"pk": {"S": pk}, "sk": {"S": sk}, "n": {"N": str(len(sk))}})
    return table


def _keys(answer: tuple[list[Any], int, Any]) -> tuple[list[tuple[str, str]], int, Any]:
    items, scanned, last = answer
    return [(i.attrs["pk"].value, i.attrs["sk"].value) for i in items], scanned, last


class _Untouchable:
    """An item of another partition that fails whoever reads it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a query of one partition read another's item ({name})")


def test_a_query_of_one_partition_reads_no_other_partition() -> None:
    # moto sorted every item of the table for each Query: a task's read cost the whole ledger.
    table = _ledger([("task-a", "TASK"), ("task-a", "FILE#0001"), ("task-b", "TASK")])
    table.items[DynamoType({"S": "task-c"})][DynamoType({"S": "TASK"})] = _Untouchable()  # type: ignore[assignment]
    items, _, _ = _keys(table.query(DynamoType({"S": "task-a"}), None, [], None, None, True, None))
    assert items == [("task-a", "FILE#0001"), ("task-a", "TASK")]


_PARTITIONS = st.sampled_from(["a", "b", "c", "absent"])


@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.text("FILET#0123", max_size=6))),
    partition=_PARTITIONS,
    comparison=st.sampled_from([None, "BEGINS_WITH", "GT", "BETWEEN"]),
    forward=st.booleans(),
    limit=st.sampled_from([None, 1, 2]),
)
def test_a_query_answers_as_moto_does(
    items: list[tuple[str, str]], partition: str, comparison: str | None, forward: bool, limit: int | None
) -> None:
    table = _ledger(items)
    values = {"BEGINS_WITH": ["F"], "GT": ["FILE"], "BETWEEN": ["F", "T"]}.get(comparison or "", [])
    args = (
        DynamoType({"S": partition}),
        comparison,
        [DynamoType({"S": v}) for v in values],
        limit,
        None,
        forward,
        None,
    )
    assert _keys(table.query(*args)) == _keys(moto_server._query(table, *args))


def test_the_backend_of_a_host_is_moto_s() -> None:
    dispatcher = DomainDispatcherApplication(create_backend_app)
    for host in ("s3.us-east-1.amazonaws.com", "dynamodb", "sqs.us-east-1.amazonaws.com", None, "moto_api"):
        assert dispatcher.get_backend_for_host(host) == moto_server._get_backend_for_host(dispatcher, host)


def test_receiving_checks_retention_without_building_the_queues_attributes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # moto built every attribute of the queue (each count a scan of it) for each message it
    # received: a receive cost the square of the queue's length.
    backend = SQSBackend("us-east-1", "123456789012")
    backend.create_queue("kept", MessageRetentionPeriod="60")
    for n in range(3):
        backend.send_message("kept", f"m{n}")
    old = backend.send_message("kept", "old")
    old.sent_timestamp -= 61_000  # past the queue's retention

    def built(queue: Any) -> Any:
        raise AssertionError("the queue's attributes were built for a receive")

    monkeypatch.setattr(Queue, "attributes", property(built))
    received = backend.receive_message("kept", 10, 0, 30)
    assert sorted(m.body for m in received) == ["m0", "m1", "m2"]
