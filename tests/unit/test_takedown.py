"""Takedown's exact S3 requests (every version, the governance bypass, the hiding marker) and its CLI."""

import pytest
from botocore.stub import Stubber
from devstack.cli import run
from devstack.takedown import main
from hypothesis import given
from hypothesis import strategies as st

from kie2s3.adapters.ledger import key_chunks
from kie2s3.adapters.s3_store import S3Store

BUCKET = "archive-bucket"
KEY = "kie/t1/00.png"


def _listing(stubber: Stubber, prefix: str) -> None:
    stubber.add_response(
        "list_object_versions",
        {
            "Versions": [{"Key": KEY, "VersionId": "v1"}, {"Key": f"{KEY}.other", "VersionId": "v9"}],
            "DeleteMarkers": [{"Key": KEY, "VersionId": "m1"}],
            "IsTruncated": False,
        },
        {"Bucket": BUCKET, "Prefix": prefix},
    )


def test_remove_deletes_every_version_of_exactly_that_key(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stubber = stubbed
    _listing(stubber, KEY)
    for version in ("v1", "m1"):
        stubber.add_response("delete_object", {}, {"Bucket": BUCKET, "Key": KEY, "VersionId": version})
    assert store.remove(KEY, exact=True) == {KEY: 0}


def test_remove_locked_versions_are_hidden_by_a_delete_marker(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stubber = stubbed
    _listing(stubber, KEY)
    stubber.add_client_error(
        "delete_object", "AccessDenied", expected_params={"Bucket": BUCKET, "Key": KEY, "VersionId": "v1"}
    )
    stubber.add_response("delete_object", {}, {"Bucket": BUCKET, "Key": KEY, "VersionId": "m1"})
    stubber.add_response("delete_object", {"DeleteMarker": True}, {"Bucket": BUCKET, "Key": KEY})
    assert store.remove(KEY, exact=True) == {KEY: 1}


def test_remove_asks_to_bypass_governance_only_when_told(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stubber = stubbed
    _listing(stubber, KEY)
    for version in ("v1", "m1"):
        stubber.add_response(
            "delete_object",
            {},
            {"Bucket": BUCKET, "Key": KEY, "VersionId": version, "BypassGovernanceRetention": True},
        )
    assert store.remove(KEY, exact=True, bypass_governance=True) == {KEY: 0}


def test_takedown_cli_refuses_what_is_not_a_task_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(main, ["--task", "../kie", "--stack-name", "kie2s3"]) == 2
    assert "'../kie' is not a kie.ai task id" in capsys.readouterr().err


# A key is at most 60 characters (240 bytes): the budget is never below one key, as S3 keys (≤ 1,024
# bytes) never reach TAKEDOWN_KEY_BYTES_PER_ITEM.
@given(st.lists(st.text(min_size=1, max_size=60), max_size=60), st.integers(min_value=240, max_value=1000))
def test_key_chunks_keep_every_key_in_order_each_within_its_budget(keys: list[str], budget: int) -> None:
    chunks = key_chunks(keys, budget)
    assert [key for chunk in chunks for key in chunk] == keys
    assert all(chunk and sum(len(k.encode()) for k in chunk) <= budget for chunk in chunks)
    # As few as the budget allows: no two neighbours would fit in one.
    sizes = [sum(len(k.encode()) for k in chunk) for chunk in chunks]
    assert all(a + len(b[0].encode()) > budget for a, b in zip(sizes, chunks[1:], strict=False))
