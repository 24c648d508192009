"""A copy opened after its task's takedown, the answer to its opening write lost (the soak, seed 3:
`kie/soak0003t0000805222fb2/00.jpg` stored for a task taken down)."""

import dataclasses
import io
from typing import Any

import pytest
from devstack.callbacks import market_body
from devstack.soak.aws_faults import AwsFaults
from devstack.stack import Stack
from devstack.takedown import copy_guard, takedown
from tests.integration.conftest import FAST_RETRY, archived_files, post_callback, serve


@pytest.fixture(autouse=True)
def no_callback_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """The takedown races no callback here: it waits for none."""
    from kie2s3.logic import takedown as logic

    monkeypatch.setattr(logic, "CALLBACK_GRACE_SECONDS", 0.0)


def _first_opening_lost() -> tuple[AwsFaults, list[str]]:
    """The soak's AWS faults, drawing "applied, answer lost" for the first TransactWriteItems only
    (a copy's opening write: its in-progress record with the check of its task's fence)."""
    faults = AwsFaults(seed=3, rate=1.0, name="worker0")
    lost: list[str] = []

    def draw(service: str, operation: str) -> str | None:
        if (service, operation) != ("dynamodb", "TransactWriteItems") or lost:
            return None
        lost.append(operation)
        return "lost"

    faults._draw = draw  # type: ignore[method-assign]
    return faults, lost


def test_a_copy_opened_after_the_takedown_stores_nothing_though_its_answer_was_lost(
    queue_mode: Stack, task_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The job was queued before the takedown; the worker takes it after the fence went up, and the
    # answer to its opening write (cancelled by the fence) is lost: botocore sends it again with
    # the same ClientRequestToken. DynamoDB answers a token again as it answered it only when it
    # was applied; a cancelled transaction is no write, and its retry is cancelled again.
    from kie2s3.handlers import sqs, wiring

    stack = queue_mode
    served = serve(stack, task_id, [(".jpg", 0)])
    assert post_callback(market_body(task_id, list(served)), task_id)[0] == 200
    guard = copy_guard(stack.client("dynamodb"), stack.env["IDEMPOTENCY_TABLE"], stack.env["TASKS_TABLE"])
    status = takedown(
        stack.client("s3"), stack.tasks_table(), guard, stack.bucket, "kie/", task_id, out=io.StringIO()
    )
    assert status == 0

    faults, lost = _first_opening_lost()
    dynamodb = stack.client("dynamodb")
    dynamodb.meta.events.register("before-send", faults.before_send)
    worker_guard = copy_guard(dynamodb, stack.env["IDEMPOTENCY_TABLE"], stack.env["TASKS_TABLE"])

    def services() -> Any:
        return dataclasses.replace(wiring.get_services(), retry=FAST_RETRY, guard=worker_guard)

    monkeypatch.setattr(sqs, "get_services", services)
    stack.poller().drain()

    assert lost == ["TransactWriteItems"]
    assert archived_files(stack, task_id) == {}
