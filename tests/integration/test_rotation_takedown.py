"""Rotating the webhook key without refusing callbacks in flight (issue #16, item 9)."""

import time
import uuid
from collections.abc import Iterator

import pytest
from devstack.callbacks import market_body
from devstack.lambda_runtime import function_environment
from devstack.stack import Stack
from tests.integration.conftest import (
    post_callback,
)


@pytest.fixture
def rotating_key(stack: Stack) -> Iterator[tuple[Stack, str]]:
    """A webhook HMAC secret of its own (the session's is shared), holding "key-1", and a function
    that accepts the previous version for 3 s after a rotation."""
    secret_id = f"kie2s3/rotating-{uuid.uuid4().hex[:8]}"
    stack.client("secretsmanager").create_secret(Name=secret_id, SecretString="key-1")
    env = {**stack.env, "KIE_WEBHOOK_HMAC_SECRET": secret_id, "SECRET_ROTATION_WINDOW_SECONDS": "3"}
    with function_environment(env):
        yield stack, secret_id


def _callback(task_id: str, key: str) -> int:
    body = market_body(task_id, [f"https://tempfile.aiquickdraw.com/p/{task_id}.png"], state="fail")
    return post_callback(body, task_id, hmac_key=key)[0]


def test_rotation_previous_key_is_accepted_within_the_window_and_refused_after(
    rotating_key: tuple[Stack, str],
) -> None:
    stack, secret_id = rotating_key
    # Rotate: "key-2" becomes AWSCURRENT, "key-1" AWSPREVIOUS.
    stack.client("secretsmanager").put_secret_value(SecretId=secret_id, SecretString="key-2")
    rotated = time.time()
    assert _callback(uuid.uuid4().hex, "key-2") == 200
    assert _callback(uuid.uuid4().hex, "key-1") == 200  # a callback signed before the rotation
    assert _callback(uuid.uuid4().hex, "key-0") == 401  # never a key older than the previous one
    time.sleep(max(0.0, rotated + 4.1 - time.time()))  # past the window (CreatedDate has whole seconds)
    assert _callback(uuid.uuid4().hex, "key-1") == 401
    assert _callback(uuid.uuid4().hex, "key-2") == 200


def test_rotation_new_key_is_accepted_though_the_old_one_is_cached(
    rotating_key: tuple[Stack, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """kie.ai signs with the new key as soon as it is made: a signature no cached version matches
    makes the function read the secret again (at most every REFRESH_SECRETS_AFTER_SECONDS)."""
    from kie2s3.logic import receive

    stack, secret_id = rotating_key
    monkeypatch.setattr(receive, "REFRESH_SECRETS_AFTER_SECONDS", 0.0)
    assert _callback(uuid.uuid4().hex, "key-1") == 200  # the cache holds key-1
    stack.client("secretsmanager").put_secret_value(SecretId=secret_id, SecretString="key-2")
    assert _callback(uuid.uuid4().hex, "key-2") == 200
