"""What one copy costs on the wire, counted from botocore's own events and the kie.ai emulator."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from devstack.callbacks import market_body
from devstack.stack import Stack
from tests.integration.conftest import post_callback, serve, task_document


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
