"""The kie.ai emulator's API routes: download-url and record-info as kie.ai answers them, and its admin API."""

from __future__ import annotations

import json
from typing import Final

from devstack.kie_http import ENVELOPE_MESSAGES, HandlerBase

RECORD_INFO_PATHS: Final[dict[str, str]] = {
    "market": "/api/v1/jobs/recordInfo",
    "veo": "/api/v1/veo/record-info",
    "veo4k": "/api/v1/veo/record-info",
    "suno": "/api/v1/generate/record-info",
    "suno_wav": "/api/v1/wav/record-info",
    "suno_mp4": "/api/v1/mp4/record-info",
    "suno_midi": "/api/v1/midi/record-info",
    "suno_voice": "/api/v1/voice/record-info",
    "suno_vocal_separation": "/api/v1/vocal-removal/record-info",
    "suno_cover": "/api/v1/suno/cover/record-info",
    "gpt4o": "/api/v1/gpt4o-image/record-info",
    "flux_kontext": "/api/v1/flux/kontext/record-info",
    "runway": "/api/v1/runway/record-detail",
    "runway_aleph": "/api/v1/aleph/record-info",
    "luma": "/api/v1/modify/record-info",
    "midjourney": "/api/v1/mj/record-info",
}
"""Record-info endpoint per API family (kie-api.md §5)."""

DOWNLOAD_URL_PATH: Final = "/api/v1/common/download-url"

_NOT_FOUND: Final = object()
"""What KieEmulator._admin_call answers for a route it does not have."""


class ApiRoutes(HandlerBase):
    """kie.ai's API (download-url, record-info) and the emulator's own admin API."""

    def _download_url(self, body: bytes) -> None:
        emu = self.emulator
        url: str | None = None
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("url"), str):
            url = payload["url"]
        emu._count_download_url(url or "")
        injected = emu._take_envelope_fault(emu._download_url_faults, url)
        if injected is not None:
            self._envelope(injected)
        elif not self._authorized():
            self._envelope(401)
        elif payload is None:
            self._envelope(422, "Request body must be JSON")
        elif url is None or not url:
            self._envelope(422, "url is required")
        else:
            link = emu._link_for_result_url(url)
            if link is None:
                self._envelope(422)
            else:
                self._envelope(200, "success", link)

    def _record_info(self, path: str, query: dict[str, list[str]]) -> None:
        emu = self.emulator
        task_id = (query.get("taskId") or [""])[0]
        emu._count_record_info(task_id)
        if (seconds := emu._take_slow_answer(task_id)) and emu._stopping.wait(seconds):
            return
        injected = emu._take_envelope_fault(emu._record_info_faults, task_id)
        if injected is not None:
            self._envelope(injected)
        elif not self._authorized():
            self._envelope(401)
        elif not task_id:
            self._envelope(422, "taskId is required")
        else:
            data = emu._task(path, task_id)
            if data is None:
                self._envelope(422, "recordInfo is null")
            else:
                self._envelope(200, "success", data)

    # -- admin API (for the emulator run as a separate process) -----------------------------------

    def _admin(self, method: str, path: str, body: bytes) -> None:
        emu = self.emulator
        if not self._authorized():
            self._send_json(401, {"code": 401, "msg": ENVELOPE_MESSAGES[401], "data": None})
            return
        try:
            payload = json.loads(body) if body else {}
            if not isinstance(payload, dict):
                raise TypeError("body must be a JSON object")
            result = emu._admin_call(method, path, payload)
        except (ValueError, TypeError, KeyError) as exc:
            self._send_json(400, {"code": 400, "msg": f"{type(exc).__name__}: {exc}", "data": None})
            return
        if result is _NOT_FOUND:
            self._send_json(404, {"code": 404, "msg": f"No endpoint {method} {path}", "data": None})
        else:
            self._send_json(200, {"code": 200, "msg": "success", "data": result})
