"""What one copy costs on the wire, counted from botocore's own events and the kie.ai emulator."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from devstack.callbacks import market_body
from devstack.stack import Stack
from tests.integration.conftest import Outbox, post_callback, serve, task_document


@contextmanager
def _aws_requests(clients: dict[str, Any]) -> Iterator[list[str]]:
    """Every request the named botocore clients send meanwhile, as `<name> <operation>`, in order."""
    sent: list[str] = []
    hooks = []
    for name, client in clients.items():

        def hook(event_name: str, _name: str = name, **_: Any) -> None:
            sent.append(f"{_name} {event_name.rsplit('.', 1)[-1]}")

        client.meta.events.register("before-send.*", hook)
        hooks.append((client, hook))
    try:
        yield sent
    finally:
        for client, hook in hooks:
            client.meta.events.unregister("before-send.*", hook)


def test_single_part_copy_makes_six_round_trips(queue_mode: Stack, task_id: str) -> None:
    from kie2s3.adapters import clients

    ((url, source),) = serve(queue_mode, task_id, [(".png", 256 * 1024)]).items()
    post_callback(market_body(task_id, [url]), task_id)  # queues the copy job
    poller = queue_mode.poller()
    aws = {
        "idempotency": clients.dynamodb_client(),
        "ledger": clients.dynamodb_resource().meta.client,
        "s3": clients.s3_client(),
    }
    with _aws_requests(aws) as sent:
        assert poller.poll_once() == 1  # the worker copies the file
    assert task_document(task_id)["state"] == "copied"
    assert sent == [
        "idempotency TransactWriteItems",
        "s3 PutObject",
        "idempotency UpdateItem",
        "ledger UpdateItem",
    ]
    assert queue_mode.emulator.download_url_calls[url] == 1
    assert queue_mode.emulator.file_requests[source.name] == 1
    print(f"\nsingle-part copy: {len(sent) + 2} round trips: download-url, GET, {', '.join(sent)}")


@contextmanager
def _recorded(stack: Stack, clients: list[Any]) -> Iterator[dict[str, int]]:
    """The requests the function's clients send meanwhile, counted by devstack.roundtrips' labels."""
    from devstack.roundtrips import Recorder

    recorder = Recorder(stack.env)
    counted: dict[str, int] = {}
    for client in clients:
        recorder.attach(client)
    try:
        yield counted
    finally:
        for client in clients:
            recorder.detach(client)
        for trip in recorder.trips():
            counted[trip.label] = counted.get(trip.label, 0) + 1


@pytest.mark.parametrize("size", [256 * 1024, 12 * 1024**2], ids=["single part", "multipart"])
def test_cost_estimate_counts_every_request_of_a_files_way(outbox: Outbox, size: int) -> None:
    from devstack import cost

    from kie2s3.adapters import clients

    function_clients = [
        clients.dynamodb_client(),
        clients.dynamodb_resource().meta.client,
        clients.s3_client(),
        clients.sqs_client(),
        clients.events_client(),
        clients.secrets_client(),
    ]
    stack = outbox.stack
    warm = uuid.uuid4().hex  # a warm container: its secrets cached, as the bench's worker is
    ((warm_url, _),) = serve(stack, warm, [(".png", 1024)]).items()
    post_callback(market_body(warm, [warm_url]), warm)
    outbox.drain()
    task_id = uuid.uuid4().hex
    ((url, source),) = serve(stack, task_id, [(".png", size)]).items()
    callback, copy, events = cost.kie2s3_path(size, cost.template_memory())

    with _recorded(stack, function_clients) as sent:
        post_callback(market_body(task_id, [url]), task_id)
    assert sent == callback.requests
    with _recorded(stack, function_clients) as sent:
        stack.poller().drain()
    expected = dict(copy.requests)
    assert expected.pop("kie.ai download-url") == stack.emulator.download_url_calls[url]
    source_gets = sum(expected.pop(label) for label in list(expected) if label.startswith("source "))
    assert source_gets == stack.emulator.file_requests[source.name]
    assert sent == expected
    with _recorded(stack, function_clients) as sent:
        outbox.stream.drain()
    assert sent == events.requests
    published = stack.take_events()
    assert [e["detail-type"] for e in published] == ["File Archived", "Task Archived"]
    assert len(published) == events.events
