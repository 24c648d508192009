"""Fixtures the unit tests share."""

from collections.abc import Iterator

import boto3
import pytest
from botocore.stub import Stubber

from kie2s3.adapters.s3_store import S3Store
from kie2s3.logic import takedown

STUBBED_BUCKET = "archive-bucket"


@pytest.fixture
def stubbed() -> Iterator[tuple[S3Store, Stubber]]:
    """An S3Store over a stubbed client: each test lists the exact requests it expects."""
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield S3Store(client, STUBBED_BUCKET), stubber
        stubber.assert_no_pending_responses()


@pytest.fixture(autouse=True)
def no_callback_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Takedowns wait for no callbacks in flight (a test that races one sets the grace itself)."""
    monkeypatch.setattr(takedown, "CALLBACK_GRACE_SECONDS", 0.0)
