"""The fenced transactions' exact requests: one that meets another on its task's item is sent again."""

from collections.abc import Iterator
from typing import cast

import boto3
import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.stub import ANY, Stubber
from tests.fakes import FakeLambdaContext

from kie2s3.adapters import ledger as ledger_module
from kie2s3.adapters.idempotency import CopyGuard, DynamoDBCopyRecords
from kie2s3.adapters.ledger import Ledger
from kie2s3.errors import RetryableError
from kie2s3.models import CopyJob, FileItem, TransferResult
from kie2s3.retries import FENCE_ATTEMPTS

TASK = "t1"
ITEM = FileItem(
    task_id=TASK,
    index=0,
    source="https://tempfile.aiquickdraw.com/p/a.png",
    kind="image",
    key="kie/t1/00.png",
    updated_at="2026-12-07T00:00:00.000+00:00",
)


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Ledger, Stubber]]:
    monkeypatch.setattr(ledger_module.time, "sleep", lambda seconds: None)
    table = boto3.resource(
        "dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    ).Table("tasks")
    with Stubber(table.meta.client) as stubber:
        yield Ledger(table), stubber
        stubber.assert_no_pending_responses()


def _cancelled(stubber: Stubber, *codes: str) -> None:
    stubber.add_client_error(
        "transact_write_items",
        service_error_code="TransactionCanceledException",
        response_meta={},
        expected_params={"TransactItems": ANY},
        modeled_fields={"CancellationReasons": [{"Code": c} for c in codes]},
    )


def test_add_files_conflicting_with_another_transaction_is_sent_again(
    stubbed: tuple[Ledger, Stubber],
) -> None:
    """The copies of a task's files open together, each checking the task's item: DynamoDB cancels
    transactions that meet there, and each is sent again rather than failing the callback."""
    ledger, stubber = stubbed
    _cancelled(stubber, "TransactionConflict", "None", "None")
    _cancelled(stubber, "None", "None", "TransactionConflict")
    stubber.add_response("transact_write_items", {}, {"TransactItems": ANY})
    assert ledger.add_files([ITEM]) == 1


def test_add_files_conflicting_every_time_gives_up_retryably(stubbed: tuple[Ledger, Stubber]) -> None:
    ledger, stubber = stubbed
    for _ in range(FENCE_ATTEMPTS):
        _cancelled(stubber, "TransactionConflict", "None", "None")
    with pytest.raises(RetryableError, match="TransactionCanceledException"):
        ledger.add_files([ITEM])


def test_add_files_fenced_is_not_sent_again(stubbed: tuple[Ledger, Stubber]) -> None:
    ledger, stubber = stubbed
    _cancelled(stubber, "ConditionalCheckFailed", "None", "TransactionConflict")
    assert ledger.add_files([ITEM]) == 0


def test_copy_opening_conflicting_with_another_is_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy's opening write (its idempotency record, fenced on its task) that meets another copy
    of the same task is sent again: the copy runs now, not a visibility timeout later."""
    monkeypatch.setattr(ledger_module.time, "sleep", lambda seconds: None)
    client = boto3.client(
        "dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    job = CopyJob(task_id=TASK, index=0, source=ITEM.source, kind="image", family="market", key=ITEM.key)
    result = TransferResult(bucket="b", key=ITEM.key, bytes=1, sha256="0" * 64, content_type="image/png")
    with Stubber(client) as stubber:
        _cancelled(stubber, "None", "TransactionConflict")
        stubber.add_response("transact_write_items", {}, {"TransactItems": ANY})
        stubber.add_response("update_item", {}, None)  # the record completed
        guard = CopyGuard(DynamoDBCopyRecords("idempotency", client, "tasks"))
        guard.register_lambda_context(cast("LambdaContext", FakeLambdaContext()))
        guarded = guard.run(job, lambda: result)
        stubber.assert_no_pending_responses()
    assert (guarded.outcome, guarded.result) == ("ran", result)
