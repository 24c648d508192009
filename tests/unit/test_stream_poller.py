"""devstack's StreamPoller plays Lambda's DynamoDB stream mapping: checkpoints, partial batch
failures, bisection and the on-failure record, over a fake stream and a fake function."""

from collections.abc import Callable
from typing import Any

import pytest
from devstack import lambda_runtime
from devstack.lambda_runtime import StreamPoller

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/label"


class FakeStream:
    """One shard of records with sequence numbers 101, 102, ...; iterators name where they read from."""

    def __init__(self, count: int) -> None:
        self.records = [self.record(101 + n) for n in range(count)]
        self.read = 0  # records handed out by get_records

    @staticmethod
    def record(sequence: int) -> dict[str, Any]:
        return {"eventSource": "aws:dynamodb", "dynamodb": {"SequenceNumber": str(sequence), "Keys": {}}}

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": "shard-1"}]}}

    def get_shard_iterator(self, **where: Any) -> dict[str, Any]:
        kind, sequence = where["ShardIteratorType"], int(where.get("SequenceNumber", 0))
        first = {
            "TRIM_HORIZON": 101,
            "LATEST": 101 + len(self.records),
            "AT_SEQUENCE_NUMBER": sequence,
            "AFTER_SEQUENCE_NUMBER": sequence + 1,
        }[kind]
        return {"ShardIterator": str(first)}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        start = int(ShardIterator) - 101
        records = self.records[start : start + Limit]
        self.read += len(records)
        return {"Records": records, "NextShardIterator": "unused"}


def _function(monkeypatch: pytest.MonkeyPatch, answer: Callable[[list[str]], Any]) -> list[list[str]]:
    """Replace the handler: `answer(sequence numbers)` is its response (or raises); the batches it saw."""
    seen: list[list[str]] = []

    def invoke(event: dict[str, Any], context: Any) -> Any:
        batch = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
        assert all(r["eventSourceARN"] == ARN for r in event["Records"])
        seen.append(batch)
        return answer(batch)

    monkeypatch.setattr(lambda_runtime, "invoke", invoke)
    return seen


def _poller(stream: FakeStream, **settings: Any) -> StreamPoller:
    return StreamPoller(streams=stream, stream_arn=ARN, batch_size=4, **settings)


def test_batches_in_order_then_nothing_more(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _function(monkeypatch, lambda batch: {"batchItemFailures": []})
    poller = _poller(FakeStream(6))
    poller.drain()
    assert seen == [["101", "102", "103", "104"], ["105", "106"]]
    assert poller.poll_once() == 0


def test_latest_starts_after_the_records_already_there(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _function(monkeypatch, lambda batch: {"batchItemFailures": []})
    stream = FakeStream(3)
    poller = _poller(stream, starting_position="LATEST").start()
    assert poller.poll_once() == 0  # nothing new yet: the start position holds
    stream.records += [stream.record(104), stream.record(105)]
    poller.drain()
    assert seen == [["104", "105"]]
    # Where LATEST is comes from the stream, not from reading every record already there.
    assert stream.read == 2


def test_a_partial_failure_is_delivered_again_from_the_first_failed_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failures = {"103": 1}

    def answer(batch: list[str]) -> dict[str, Any]:
        failed = [s for s in batch if failures.get(s)]
        for s in failed:
            failures[s] -= 1
        return {"batchItemFailures": [{"itemIdentifier": s} for s in failed]}

    seen = _function(monkeypatch, answer)
    _poller(FakeStream(5)).drain()
    assert seen == [["101", "102", "103", "104"], ["103", "104", "105"]]


def test_an_error_splits_the_batch_until_the_bad_record_is_alone_then_gives_it_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def answer(batch: list[str]) -> dict[str, Any]:
        if "102" in batch:
            raise RuntimeError("boom")
        return {"batchItemFailures": []}

    seen = _function(monkeypatch, answer)
    given_up: list[dict[str, Any]] = []
    poller = _poller(FakeStream(4), max_retry_attempts=3, bisect_on_error=True, on_failure=given_up.append)
    poller.drain()
    assert seen[:3] == [["101", "102", "103", "104"], ["101", "102"], ["101"]]
    # The bad record alone: retried 3 times, given up; the rest of the split batch, then on as before.
    assert seen[3:] == [["102"]] * 4 + [["103"], ["104"]]
    assert poller.given_up == 1
    [record] = given_up
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["DDBStreamBatchInfo"] == {
        "shardId": "shard-1",
        "startSequenceNumber": "102",
        "endSequenceNumber": "102",
        "approximateArrivalOfFirstRecord": "",
        "approximateArrivalOfLastRecord": "",
        "batchSize": 1,
        "streamArn": ARN,
    }


def test_a_batch_larger_than_lambdas_six_mb_is_made_smaller_as_the_mapping_makes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Item images of ~2 MB: four of them are an event over 6 MB, which Lambda would never invoke with.
    seen = _function(monkeypatch, lambda batch: {"batchItemFailures": []})
    stream = FakeStream(5)
    for record in stream.records:
        record["dynamodb"]["NewImage"] = {"source": {"S": "x" * 2_000_000}}
    poller = _poller(stream)
    poller.drain()
    assert [s for batch in seen for s in batch] == ["101", "102", "103", "104", "105"]
    # Three records of 2,000,000 bytes and their JSON fit 6,291,456; 4 do not.
    assert all(len(batch) <= 3 for batch in seen)
