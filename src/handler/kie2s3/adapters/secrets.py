"""Secrets by id through Powertools Parameters, cached per container; values are never logged."""

from functools import lru_cache

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from kie2s3.adapters import clients
from kie2s3.errors import ConfigurationError

# Long enough to spare Secrets Manager calls, short enough that a rotated key is picked up soon.
SECRET_MAX_AGE_SECONDS = 300


@lru_cache(maxsize=1)
def secrets_provider() -> SecretsProvider:
    """The container's provider, on the shared client (Powertools' default would build a second boto3 session)."""
    return SecretsProvider(boto3_client=clients.secrets_client())


def get_secret(secret_id: str) -> str:
    """The secret's string value; ConfigurationError (naming the id, never the value) when unreadable."""
    try:
        value = secrets_provider().get(secret_id, max_age=SECRET_MAX_AGE_SECONDS)
    except GetParameterError as exc:
        raise ConfigurationError(f"cannot read secret {secret_id!r}") from exc
    if isinstance(value, bytes):
        value = value.decode()
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"secret {secret_id!r} is empty")
    return value.strip()
