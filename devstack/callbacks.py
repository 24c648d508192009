"""Callbacks as kie.ai sends them: signed API Gateway events, and the result files they name."""

import base64
import contextlib
import hashlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from devstack.cli import UserError
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


def event_path(name: str) -> Path:
    """The file of an event: the path as given, else a file of that name in events/ (UserError if neither)."""
    given = Path(name)
    for path in (given, EVENTS_DIR / given.name):
        if path.is_file():
            return path
    raise UserError(
        f"event file {name} not found: the samples are in events/ (ls events), "
        "e.g. EVENT=events/callback-market-success.json"
    )


def load_event(name: str) -> dict[str, Any]:
    """An event from events/ (by file name or path); a UserError says what is wrong with a bad one."""
    path = event_path(name)
    try:
        event = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(
            f"{name} is not JSON ({exc}): an event file holds one JSON object, as in events/"
        ) from exc
    if not isinstance(event, dict):
        raise UserError(f"{name} holds a JSON {type(event).__name__}, not an event object (see events/)")
    return event


def callback_body(event: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The decoded JSON body of a callback event; a UserError when it has none or it is not a JSON object."""
    raw = event.get("body")
    if not isinstance(raw, str):
        raise UserError(f"{name} has no body: a callback event carries kie.ai's JSON body as a string")
    try:
        text = base64.b64decode(raw).decode() if event.get("isBase64Encoded") else raw
        body = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{name}: its body is not JSON ({exc}); kie.ai's callbacks are JSON objects") from exc
    if not isinstance(body, dict):
        raise UserError(
            f"{name}: its body is a JSON {type(body).__name__}; kie.ai's callbacks are JSON objects"
        )
    return body


_URL_PREFIXES = ("https://", "http://")


def urls_in(value: object) -> list[str]:
    """Every URL string inside a JSON value, JSON-in-a-string included (the emulator serves each one)."""
    if isinstance(value, str):
        if value.startswith(_URL_PREFIXES):
            return [value]
        if value[:1] in "{[":
            with contextlib.suppress(ValueError):
                return urls_in(json.loads(value))
        return []
    if isinstance(value, dict):
        return [u for v in value.values() for u in urls_in(v)]
    if isinstance(value, list):
        return [u for v in value for u in urls_in(v)]
    return []


def resign(event: dict[str, Any], task_id: str, hmac_key: str) -> dict[str, Any]:
    """The same event with a fresh timestamp and signature (sample files carry stale ones)."""
    headers = {k: v for k, v in event.get("headers", {}).items() if not k.lower().startswith("x-webhook-")}
    headers.update({k.lower(): v for k, v in sign(hmac_key, task_id, int(time.time())).items()})
    return {**event, "headers": headers}


def _file_name(url: str) -> tuple[str, str]:
    """The emulator's file name for a result URL, and its content type (from the URL's suffix)."""
    suffix = Path(url.split("?", 1)[0]).suffix.lower()
    name = f"{hashlib.sha256(url.encode()).hexdigest()[:16]}{suffix}"
    return name, _TYPES.get(suffix, "application/octet-stream")


def serve_result_files(
    emulator: KieEmulator, urls: Iterable[str], *, size: int = 256 * 1024, seed: int = 1
) -> dict[str, SyntheticFile]:
    """Have the emulator serve a synthetic file under each result URL (kie.ai host names included)."""
    served: dict[str, SyntheticFile] = {}
    for n, url in enumerate(urls):
        name, content_type = _file_name(url)
        file = SyntheticFile(name, size, content_type, seed=seed + n)
        emulator.add_file(file, result_url=url)
        served[url] = file
    return served


class RemoteEmulator:
    """A kie.ai emulator in another process (a `make up` stack), driven through its admin API."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key

    def _admin(self, path: str, payload: Mapping[str, Any]) -> Any:
        request = urllib.request.Request(
            f"{self.base_url}/_emulator/{path}",
            data=json.dumps(payload).encode(),
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return json.loads(answer.read())["data"]
        except (urllib.error.URLError, OSError) as exc:
            raise UserError(
                f"the kie.ai emulator at {self.base_url} did not answer ({exc}): make status"
            ) from exc

    def serve(self, urls: Iterable[str], *, size: int = 256 * 1024) -> dict[str, dict[str, Any]]:
        """Serve a synthetic file under each result URL; URL -> {name, size, sha256}."""
        served = {}
        for url in urls:
            name, content_type = _file_name(url)
            payload = {
                "name": name,
                "size": size,
                "contentType": content_type,
                "resultUrl": url,
                "sha256": True,
            }
            served[url] = self._admin("files", payload)
        return served

    def add_task(self, family: str, task_id: str, data: Mapping[str, Any]) -> None:
        """Register what the family's record-info answers for the task."""
        self._admin("tasks", {"family": family, "taskId": task_id, "data": dict(data)})
