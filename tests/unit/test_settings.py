import re

import pytest
from tests.environment import MINIMAL_ENV

from kie2s3.errors import ConfigurationError
from kie2s3.settings import DEFAULT_SOURCE_HOSTS, Settings

BASE = MINIMAL_ENV


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


KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_settings_without_a_kms_key_leave_encryption_to_the_bucket() -> None:
    # An environment written before KMS_KEY_ARN existed keeps working, as it did: SSE-S3.
    assert Settings.from_environ(BASE).kms_key_arn == ""
    assert Settings.from_environ({**BASE, "KMS_KEY_ARN": ""}).kms_key_arn == ""


def test_settings_read_the_kms_key_arn() -> None:
    assert Settings.from_environ({**BASE, "KMS_KEY_ARN": KEY_ARN}).kms_key_arn == KEY_ARN


@pytest.mark.parametrize(
    "value",
    ["alias/kie2s3", "1234abcd-12ab-34cd-56ef-1234567890ab", f" {KEY_ARN}", "arn:aws:kms:us-east-1:1:key/x"],
)
def test_settings_refuse_a_kms_key_that_is_not_a_key_arn(value: str) -> None:
    with pytest.raises(ConfigurationError, match="KMS_KEY_ARN"):
        Settings.from_environ({**BASE, "KMS_KEY_ARN": value})


def test_settings_storage_class_is_standard_unless_set() -> None:
    assert Settings.from_environ(BASE).storage_class == "STANDARD"


@pytest.mark.parametrize("value", ["STANDARD", "INTELLIGENT_TIERING", "STANDARD_IA", "GLACIER_IR"])
def test_settings_read_every_allowed_storage_class(value: str) -> None:
    assert Settings.from_environ({**BASE, "STORAGE_CLASS": value}).storage_class == value


@pytest.mark.parametrize("value", ["", "DEEP_ARCHIVE", "GLACIER", "standard"])
def test_settings_refuse_another_storage_class(value: str) -> None:
    # DEEP_ARCHIVE and GLACIER objects cannot be read back at once: a duplicate could not be checked.
    with pytest.raises(ConfigurationError, match="STORAGE_CLASS"):
        Settings.from_environ({**BASE, "STORAGE_CLASS": value})


@pytest.mark.parametrize("name", ["KIE_WEBHOOK_HMAC_SECRET", "CALLBACK_TOKEN_SECRET"])
@pytest.mark.parametrize("off", ["none", "None", "NONE", " none "])
def test_settings_take_none_as_a_secret_turned_off(name: str, off: str) -> None:
    # `sam deploy --guided` cannot take an empty value for a parameter that has a default.
    settings = Settings.from_environ({**BASE, name: off})
    assert settings.kie_webhook_hmac_secret == ""
    assert settings.callback_token_secret == ""


def test_settings_keep_a_secret_id_that_only_contains_none() -> None:
    settings = Settings.from_environ({**BASE, "KIE_WEBHOOK_HMAC_SECRET": "kie2s3/none"})
    assert settings.kie_webhook_hmac_secret == "kie2s3/none"


FORWARDING = {
    **BASE,
    "FORWARD_URL": "https://hooks.example.com/kie?token=abc",
    "FORWARD_HMAC_SECRET": "kie2s3/forward-hmac-key",
    "FORWARD_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/forward",
}


def test_settings_forwarding_is_off_without_a_forward_url() -> None:
    settings = Settings.from_environ({**BASE, "FORWARD_HMAC_SECRET": "", "FORWARD_QUEUE_URL": ""})
    assert settings.forwarding is False


def test_settings_forwarding_takes_a_url_with_its_own_token() -> None:
    settings = Settings.from_environ(FORWARDING)
    assert settings.forwarding is True
    assert settings.forward_url == "https://hooks.example.com/kie?token=abc"


@pytest.mark.parametrize(
    "url",
    [
        "https://abc123.execute-api.us-east-1.amazonaws.com/callbacks/kie",
        "https://abc123.execute-api.us-east-1.amazonaws.com/callbacks/kie/",
        "https://api.example.com/prod/callbacks/kie?family=veo",
        "https://api.example.com/Callbacks/KIE",
        "https://api.example.com/x/../callbacks/kie",
    ],
)
def test_settings_refuse_a_forward_url_at_kie2s3s_callback_route(url: str) -> None:
    # Refused, never fatal: the settings load (the archive runs), forwarding says why it cannot.
    refusal = Settings.from_environ({**FORWARDING, "FORWARD_URL": url}).forward_refusal
    assert refusal is not None
    assert re.search(r"FORWARD_URL.*own callback route.*loop", refusal)


@pytest.mark.parametrize(
    ("url", "local", "why"),
    [
        ("http://hooks.example.com/kie", False, "scheme 'http'"),
        ("http://127.0.0.1:9000/kie", False, "scheme 'http'"),
        ("http://hooks.example.com/kie", True, "scheme 'http'"),
        ("https://user:pw@hooks.example.com/kie", False, "credentials"),
        ("https://169.254.169.254/latest", False, "link-local"),
        ("hooks.example.com/kie", False, "scheme"),
    ],
)
def test_settings_refuse_a_forward_url_that_is_not_https(url: str, local: bool, why: str) -> None:
    env = {**FORWARDING, "FORWARD_URL": url, "ALLOW_LOCAL_SOURCES": str(local).lower()}
    refusal = Settings.from_environ(env).forward_refusal
    assert refusal is not None
    assert re.search(rf"FORWARD_URL.*{why}", refusal)


def test_settings_allow_a_loopback_http_forward_url_in_local_mode() -> None:
    env = {**FORWARDING, "FORWARD_URL": "http://127.0.0.1:9000/kie", "ALLOW_LOCAL_SOURCES": "true"}
    settings = Settings.from_environ(env)
    assert settings.forwarding
    assert settings.forward_refusal is None


@pytest.mark.parametrize(
    ("name", "value"),
    [("FORWARD_HMAC_SECRET", ""), ("FORWARD_HMAC_SECRET", "None"), ("FORWARD_QUEUE_URL", "")],
)
def test_settings_forwarding_needs_its_key_and_queue(name: str, value: str) -> None:
    refusal = Settings.from_environ({**FORWARDING, name: value}).forward_refusal
    assert refusal == f"{name} is required when FORWARD_URL is set"


def test_settings_forward_url_errors_never_show_its_query() -> None:
    settings = Settings.from_environ(
        {**FORWARDING, "FORWARD_URL": "https://api.example.com/callbacks/kie?token=s3cret"}
    )
    assert settings.forward_refusal is not None
    assert "s3cret" not in settings.forward_refusal
