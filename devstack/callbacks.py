"""Callbacks as kie.ai sends them: signed API Gateway events, and the result files they name."""

import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from devstack.kie_emulator import KieEmulator, SyntheticFile, sign
from devstack.lambda_runtime import http_event

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"
_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".mp4": "video/mp4",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
}


def market_body(
    task_id: str, urls: list[str], *, state: str = "success", code: int = 200, model: str = "nano-banana-pro"
) -> dict[str, Any]:
    """A Market callback body as kie.ai sends it (kie-api.md §1.1 and §8): success or failure."""
    now_ms = int(time.time() * 1000)
    success = state == "success"
    return {
        "code": code,
        "msg": "Playground task completed successfully." if success else "Playground task failed.",
        "data": {
            "taskId": task_id,
            "model": model,
            "state": state,
            "param": json.dumps({"model": model, "input": {"prompt": "lighthouse at dusk"}}),
            "resultJson": json.dumps({"resultUrls": urls}) if success else None,
            "failCode": None if success else "500",
            "failMsg": None if success else "Internal server error",
            "costTime": 17,
            "createTime": now_ms - 17_000,
            "completeTime": now_ms,
        },
    }


def callback_event(
    body: Mapping[str, Any] | str,
    *,
    task_id: str,
    hmac_key: str | None,
    timestamp: int | None = None,
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A `POST /callbacks/kie` event signed like kie.ai signs it (unsigned when hmac_key is None)."""
    signed = (
        sign(hmac_key, task_id, timestamp if timestamp is not None else int(time.time())) if hmac_key else {}
    )
    raw = body if isinstance(body, str) else json.dumps(body)
    return http_event("POST", "/callbacks/kie", body=raw, headers={**signed, **(headers or {})}, query=query)


def load_event(name: str) -> dict[str, Any]:
    """An event from events/ (by file name or path)."""
    path = Path(name) if Path(name).exists() else EVENTS_DIR / name
    event: dict[str, Any] = json.loads(path.read_text())
    return event


def resign(event: dict[str, Any], task_id: str, hmac_key: str) -> dict[str, Any]:
    """The same event with a fresh timestamp and signature (sample files carry stale ones)."""
    headers = {k: v for k, v in event.get("headers", {}).items() if not k.lower().startswith("x-webhook-")}
    headers.update({k.lower(): v for k, v in sign(hmac_key, task_id, int(time.time())).items()})
    return {**event, "headers": headers}


def serve_result_files(
    emulator: KieEmulator, urls: Iterable[str], *, size: int = 256 * 1024, seed: int = 1
) -> dict[str, SyntheticFile]:
    """Have the emulator serve a synthetic file under each result URL (kie.ai host names included)."""
    served: dict[str, SyntheticFile] = {}
    for n, url in enumerate(urls):
        suffix = Path(url.split("?", 1)[0]).suffix.lower()
        name = f"{hashlib.sha256(url.encode()).hexdigest()[:16]}{suffix}"
        file = SyntheticFile(name, size, _TYPES.get(suffix, "application/octet-stream"), seed=seed + n)
        emulator.add_file(file, result_url=url)
        served[url] = file
    return served
