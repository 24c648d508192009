"""Secrets by id through Powertools Parameters, cached per container; values are never logged."""

import time
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.base import BaseProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import ClientError

from kie2s3.adapters import clients
from kie2s3.errors import ConfigurationError
from kie2s3.ports import SecretVersions

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

# Long enough to spare Secrets Manager calls, short enough that a rotated key is picked up soon.
SECRET_MAX_AGE_SECONDS = 300
# Secrets Manager's staging labels: the version in use, and the one it replaced at the last rotation.
CURRENT = "AWSCURRENT"
PREVIOUS = "AWSPREVIOUS"


@lru_cache(maxsize=1)
def secrets_provider() -> SecretsProvider:
    """The container's provider, on the shared client (Powertools' default would build a second boto3 session)."""
    return SecretsProvider(boto3_client=clients.secrets_client())


def _text(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode()
    return value.strip() if isinstance(value, str) else ""


def get_secret(secret_id: str) -> str:
    """The secret's string value; ConfigurationError (naming the id, never the value) when unreadable."""
    try:
        value = secrets_provider().get(secret_id, max_age=SECRET_MAX_AGE_SECONDS)
    except GetParameterError as exc:
        raise ConfigurationError(f"cannot read secret {secret_id!r}") from exc
    if not _text(value):
        raise ConfigurationError(f"secret {secret_id!r} is empty")
    return _text(value)


class VersionsProvider(BaseProvider):
    """Powertools Parameters provider of both staging labels of a secret, cached like any parameter.

    Two GetSecretValue calls per read (the same IAM action as one): AWSCURRENT with its CreatedDate,
    then AWSPREVIOUS, which a secret never rotated does not have.
    """

    def __init__(self, client: "SecretsManagerClient") -> None:
        super().__init__(client=client)  # type: ignore[no-untyped-call]  # Powertools leaves it untyped
        self._client = client

    def _get(self, name: str, **sdk_options: Any) -> dict[str, Any]:
        current = self._client.get_secret_value(SecretId=name, VersionStage=CURRENT)
        try:
            previous: str | None = _text(
                self._client.get_secret_value(SecretId=name, VersionStage=PREVIOUS).get("SecretString")
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            previous = None
        return {
            "current": _text(current.get("SecretString") or current.get("SecretBinary")),
            "previous": previous or None,
            "rotated_at": current["CreatedDate"].timestamp(),
            "fetched_at": time.time(),
        }

    def _get_multiple(self, path: str, **sdk_options: Any) -> dict[str, str]:
        raise NotImplementedError("secrets are read one by one")

    def versions(self, secret_id: str, refresh: bool = False) -> SecretVersions:
        """The secret's versions (cached SECRET_MAX_AGE_SECONDS; `refresh` reads them again);
        ConfigurationError, naming the id and never a value, when unreadable or empty."""
        try:
            found = self.get(secret_id, max_age=SECRET_MAX_AGE_SECONDS, force_fetch=refresh)
        except GetParameterError as exc:
            raise ConfigurationError(f"cannot read secret {secret_id!r}") from exc
        if not isinstance(found, dict) or not found.get("current"):
            raise ConfigurationError(f"secret {secret_id!r} is empty")
        return SecretVersions(**found)


@lru_cache(maxsize=1)
def versions_provider() -> VersionsProvider:
    """The container's provider of secret versions, on the shared client."""
    return VersionsProvider(clients.secrets_client())


def get_secret_versions(secret_id: str, refresh: bool = False) -> SecretVersions:
    """The webhook HMAC key's or callback token's current and previous values (see VersionsProvider)."""
    return versions_provider().versions(secret_id, refresh)
