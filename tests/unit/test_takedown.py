"""Takedown's exact S3 requests (every version, the governance bypass, the hiding marker) and its CLI."""

import pytest
from botocore.stub import Stubber
from devstack.cli import run
from devstack.takedown import main

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
