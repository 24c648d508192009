"""Rotating the webhook HMAC key and the callback token: AWSCURRENT always, AWSPREVIOUS within the window."""

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from tests.environment import MINIMAL_ENV

from kie2s3.adapters.secrets import VersionsProvider
from kie2s3.errors import AuthenticationError, ConfigurationError
from kie2s3.logic.receive import accepted_values
from kie2s3.ports import SecretVersions
from kie2s3.settings import Settings
from kie2s3.signature import signature_matches, verify_signature, verify_token

TASK = "7c1e0f3ab2d94c55a1e6f0b9d2c4a871"
NOW = 1_790_001_234
ROTATED = NOW - 600  # the current version was created ten minutes ago


def _versions(previous: str | None = "old") -> SecretVersions:
    return SecretVersions(current="new", previous=previous, rotated_at=float(ROTATED), fetched_at=float(NOW))


def test_accepted_values_previous_only_within_the_window() -> None:
    assert accepted_values(_versions(), float(NOW), window_seconds=601) == ("new", "old")
    assert accepted_values(_versions(), float(NOW), window_seconds=600) == ("new",)
    assert accepted_values(_versions(), float(NOW), window_seconds=0) == ("new",)


def test_accepted_values_without_a_rotation_is_the_current_one() -> None:
    assert accepted_values(_versions(previous=None), float(NOW), window_seconds=86_400) == ("new",)


def _sign(key: str) -> str:
    digest = hmac.new(key.encode(), f"{TASK}.{NOW}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _verify(signature: str, previous: tuple[str, ...]) -> None:
    verify_signature(
        key="new",
        previous=previous,
        task_id=TASK,
        timestamp=str(NOW),
        signature=signature,
        now=float(NOW),
        tolerance=300,
    )


def test_verify_signature_accepts_a_previous_key_given() -> None:
    _verify(_sign("old"), previous=("old",))
    _verify(_sign("new"), previous=("old",))


def test_verify_signature_refuses_a_previous_key_not_given() -> None:
    with pytest.raises(AuthenticationError, match="does not match"):
        _verify(_sign("old"), previous=())


def test_verify_token_accepts_a_previous_token_given() -> None:
    verify_token(expected="new", previous=("old",), presented="old")
    with pytest.raises(AuthenticationError):
        verify_token(expected="new", presented="old")


# -- the provider: Secrets Manager's two staging labels, through Powertools Parameters ----------


def _stubbed() -> tuple[VersionsProvider, Stubber]:
    client = boto3.client(
        "secretsmanager", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    return VersionsProvider(client), Stubber(client)


def _answer(value: str, created: datetime) -> dict[str, Any]:
    return {"SecretString": value, "CreatedDate": created, "Name": "kie2s3/hmac", "VersionId": "v" * 32}


def test_versions_provider_reads_current_and_previous_with_the_rotation_date() -> None:
    provider, stubber = _stubbed()
    rotated = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    stubber.add_response(
        "get_secret_value",
        _answer(" new \n", rotated),
        {"SecretId": "kie2s3/hmac", "VersionStage": "AWSCURRENT"},
    )
    stubber.add_response(
        "get_secret_value",
        _answer("old", datetime(2026, 1, 1, tzinfo=UTC)),
        {"SecretId": "kie2s3/hmac", "VersionStage": "AWSPREVIOUS"},
    )
    with stubber:
        versions = provider.versions("kie2s3/hmac")
        again = provider.versions("kie2s3/hmac")  # cached: no third call
    assert (versions.current, versions.previous, versions.rotated_at) == ("new", "old", rotated.timestamp())
    assert again == versions


def test_versions_provider_without_a_previous_version() -> None:
    provider, stubber = _stubbed()
    stubber.add_response(
        "get_secret_value",
        _answer("only", datetime(2026, 1, 1, tzinfo=UTC)),
        {"SecretId": "kie2s3/hmac", "VersionStage": "AWSCURRENT"},
    )
    stubber.add_client_error(
        "get_secret_value",
        service_error_code="ResourceNotFoundException",
        expected_params={"SecretId": "kie2s3/hmac", "VersionStage": "AWSPREVIOUS"},
    )
    with stubber:
        assert provider.versions("kie2s3/hmac").previous is None


def test_versions_provider_unreadable_secret_names_the_id_only() -> None:
    provider, stubber = _stubbed()
    stubber.add_client_error("get_secret_value", service_error_code="AccessDeniedException")
    with stubber, pytest.raises(ConfigurationError, match="kie2s3/hmac") as caught:
        provider.versions("kie2s3/hmac")
    assert "AccessDenied" not in caught.value.reason


BASE = MINIMAL_ENV


def test_settings_rotation_window_defaults_to_a_day() -> None:
    assert Settings.from_environ(BASE).secret_rotation_window_seconds == 86_400
    assert (
        Settings.from_environ({**BASE, "SECRET_ROTATION_WINDOW_SECONDS": "0"}).secret_rotation_window_seconds
        == 0
    )


def test_settings_rotation_window_refuses_a_negative_one_naming_it() -> None:
    with pytest.raises(ConfigurationError, match="SECRET_ROTATION_WINDOW_SECONDS"):
        Settings.from_environ({**BASE, "SECRET_ROTATION_WINDOW_SECONDS": "-1"})


@pytest.mark.parametrize("timestamp", ["179000123\ud800", "1790001234.5", "", "\uff11\uff17", "9" * 13])
def test_signature_matches_no_timestamp_that_is_not_whole_seconds(timestamp: str) -> None:
    # Asked before the timestamp is judged (whether to read a rotated secret again): never raises.
    assert signature_matches(("new", "old"), TASK, timestamp, _sign("new")) is False
