"""Callbacks as the HTTP layer hands them to receive_callback, and result files the fakes serve."""

import json
from collections.abc import Iterable, Mapping
from typing import Any

from devstack.callbacks import callback_body, load_event
from tests.fakes import FILE_HOST, SECRETS, Fakes

from kie2s3.families import task_id_of
from kie2s3.logic.receive import CallbackRequest
from kie2s3.signature import expected_signature

# When the callbacks of the unit tests arrive: a fixed clock, so no test depends on the real one.
NOW = 1_790_001_234.0
HMAC_KEY = SECRETS["kie2s3/webhook-hmac-key"][0]
TOKEN_SECRET = "kie2s3/callback-token"
TOKEN = SECRETS[TOKEN_SECRET][0]
# Token mode: HMAC switched off ("none"), the callback token on.
TOKEN_MODE = {"KIE_WEBHOOK_HMAC_SECRET": "none", "CALLBACK_TOKEN_SECRET": TOKEN_SECRET}


def signature_headers(task_id: str, *, key: str = HMAC_KEY, timestamp: float = NOW) -> dict[str, str]:
    """kie.ai's two webhook headers (lower-cased, as the HTTP layer hands them on)."""
    stamp = str(int(timestamp))
    return {"x-webhook-timestamp": stamp, "x-webhook-signature": expected_signature(key, task_id, stamp)}


def callback(
    body: Mapping[str, Any] | bytes,
    *,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    received_at: float = NOW,
) -> CallbackRequest:
    """A callback request with exactly these headers and query parameters (unsigned unless given)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return CallbackRequest(
        body=raw, headers=dict(headers or {}), query=dict(query or {}), received_at=received_at
    )


def signed(
    body: Mapping[str, Any] | bytes, *, query: Mapping[str, str] | None = None, key: str = HMAC_KEY
) -> CallbackRequest:
    """A callback signed with `key` for the task id it names, at NOW."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return callback(raw, headers=signature_headers(task_id_of(json.loads(raw)), key=key), query=query)


def sample(name: str) -> dict[str, Any]:
    """The JSON body of a sample event in events/ (without `.json`)."""
    return callback_body(load_event(f"{name}.json"), name)


def result_urls(task_id: str, *suffixes: str) -> list[str]:
    """Result URLs on kie.ai's file host, one per suffix."""
    return [f"https://{FILE_HOST}/p/{task_id}_{n}{suffix}" for n, suffix in enumerate(suffixes)]


def serve(fakes: Fakes, urls: Iterable[str]) -> dict[str, bytes]:
    """Serve different bytes at each URL; the bytes by URL."""
    served = {url: f"bytes of {url}\n".encode() * 10 for url in urls}
    for url, data in served.items():
        fakes.source.serve(url, data)
    return served
