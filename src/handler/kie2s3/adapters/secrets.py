"""Secrets by id through Powertools Parameters, cached per container; values are never logged."""

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from kie2s3.errors import ConfigurationError

# Long enough to spare Secrets Manager calls, short enough that a rotated key is picked up soon.
SECRET_MAX_AGE_SECONDS = 300


def get_secret(secret_id: str) -> str:
    """The secret's string value; ConfigurationError (naming the id, never the value) when unreadable."""
    try:
        value = parameters.get_secret(secret_id, max_age=SECRET_MAX_AGE_SECONDS)
    except GetParameterError as exc:
        raise ConfigurationError(f"cannot read secret {secret_id!r}") from exc
    if isinstance(value, bytes):
        value = value.decode()
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"secret {secret_id!r} is empty")
    return value.strip()
