import pytest

from kie2s3.errors import ConfigurationError
from kie2s3.settings import DEFAULT_SOURCE_HOSTS, Settings

BASE = {
    "BUCKET_NAME": "archive-bucket",
    "TASKS_TABLE": "tasks",
    "IDEMPOTENCY_TABLE": "idem",
    "KIE_API_KEY_SECRET": "kie2s3/kie-api-key",
    "COPY_MODE": "inline",
}


def test_settings_read_every_contract_variable() -> None:
    settings = Settings.from_environ(
        {
            **BASE,
            "COPY_MODE": "queue",
            "COPY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/q",
            "OBJECT_PREFIX": "archive/",
            "KIE_API_BASE_URL": "https://api.kie.ai/",
            "KIE_WEBHOOK_HMAC_SECRET": "kie2s3/hmac",
            "CALLBACK_TOKEN_SECRET": "kie2s3/token",
            "WEBHOOK_TOLERANCE_SECONDS": "60",
            "ALLOWED_SOURCE_HOSTS": " a.example.com, *.b.example.com ,",
            "ALLOW_LOCAL_SOURCES": "true",
            "MAX_FILE_BYTES": "1024",
        }
    )
    assert settings.copy_mode == "queue"
    assert settings.object_prefix == "archive/"
    assert settings.kie_api_base_url == "https://api.kie.ai"
    assert settings.allowed_source_hosts == ("a.example.com", "*.b.example.com")
    assert settings.allow_local_sources is True
    assert settings.max_file_bytes == 1024
    assert settings.webhook_tolerance_seconds == 60


def test_settings_defaults() -> None:
    settings = Settings.from_environ(BASE)
    assert settings.object_prefix == "kie/"
    assert settings.allowed_source_hosts == DEFAULT_SOURCE_HOSTS
    assert settings.allow_local_sources is False
    assert settings.max_file_bytes == 5 * 1024**3
    assert settings.kie_webhook_hmac_secret == ""


def test_settings_name_every_missing_variable() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_environ({"BUCKET_NAME": "archive-bucket"})
    for name in ("TASKS_TABLE", "IDEMPOTENCY_TABLE", "KIE_API_KEY_SECRET"):
        assert name in caught.value.reason


def test_settings_queue_mode_needs_queue_url() -> None:
    with pytest.raises(ConfigurationError, match="COPY_QUEUE_URL"):
        Settings.from_environ({**BASE, "COPY_MODE": "queue"})


@pytest.mark.parametrize(("name", "value"), [("COPY_MODE", "sometimes"), ("MAX_FILE_BYTES", "-1")])
def test_settings_refuse_invalid_values(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_environ({**BASE, name: value})
