"""kie.ai's API: download-url (fresh 20-minute links) and record-info, with envelope codes translated."""

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import urllib3

from kie2s3 import __version__
from kie2s3.errors import KieRejectedError, NotFoundError, RetryableError
from kie2s3.retries import KIE_TIMEOUTS, KieTimeouts

USER_AGENT = f"kie2s3/{__version__} (+https://github.com/kie2s3)"
# kie.ai answers HTTP 200 with the real status in the envelope's `code` (kie-api.md §4.1, §4.3).
RETRYABLE_CODES = frozenset({429, 455, 500, 502, 503, 504})


class KieClient:
    """Calls kie.ai with the account's API key (fetched lazily, so a cold start costs no secret read).

    Raises RetryableError for 429/455/5xx and network faults, PermanentError for 401/402/404/422/505
    and any other non-200 code; never retries by itself (the caller owns the retry budget). A call
    takes at most `worst_case_seconds` (kie2s3/retries.py, KieTimeouts) once the key is known.
    """

    def __init__(
        self,
        http: urllib3.PoolManager,
        base_url: str,
        api_key: Callable[[], str],
        timeouts: KieTimeouts = KIE_TIMEOUTS,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeouts = timeouts
        self._timeout = urllib3.Timeout(connect=timeouts.connect_seconds, read=timeouts.read_seconds)

    @property
    def worst_case_seconds(self) -> float:
        """The longest one call may take: its connect and read timeouts."""
        return self._timeouts.worst_case_seconds

    def download_url(self, url: str) -> str:
        """A fresh, 20-minute download link for a kie.ai result URL."""
        data = self._call("POST", "/api/v1/common/download-url", body={"url": url})
        if not isinstance(data, str) or not data:
            raise RetryableError("kie.ai download-url answered without a link")
        return data

    def record_info(self, path: str, task_id: str) -> dict[str, Any]:
        """A task's record (its family's record-info `data`); NotFoundError when kie.ai has none."""
        try:
            data = self._call("GET", f"{path}?{urlencode({'taskId': task_id})}")
        except KieRejectedError as exc:
            # kie.ai answers an unknown task with 422 "recordInfo is null" (kie-api.md §4.3).
            if exc.code in (404, 422):
                raise NotFoundError(f"kie.ai has no record of task {task_id!r}") from exc
            raise
        if not isinstance(data, dict):
            raise NotFoundError(f"kie.ai has no record of task {task_id!r}")
        return data

    def _call(self, method: str, path: str, *, body: dict[str, Any] | None = None) -> Any:
        headers = {
            "Authorization": f"Bearer {self._api_key()}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        try:
            response = self._http.request(
                method,
                f"{self._base_url}{path}",
                body=json.dumps(body).encode() if body is not None else None,
                headers=headers,
                timeout=self._timeout,
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            where = path.split("?", 1)[0]  # messages never carry query strings
            raise RetryableError(f"kie.ai {where} unreachable: {type(exc).__name__}") from exc
        path = path.split("?", 1)[0]
        if response.status >= 500 or response.status == 429:
            raise RetryableError(f"kie.ai {path} answered HTTP {response.status}")
        try:
            envelope = json.loads(response.data)
            code = int(envelope["code"])
        # OverflowError: a code of 1e400 (no int is infinite); RecursionError: nesting deeper than json reads.
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
            raise RetryableError(
                f"kie.ai {path} answered HTTP {response.status} without an envelope"
            ) from exc
        if code == 200:
            return envelope.get("data")
        message = str(envelope.get("msg") or "")[:200]
        if code in RETRYABLE_CODES:
            raise RetryableError(f"kie.ai {path} answered code {code}: {message}")
        raise KieRejectedError(code, f"kie.ai {path} answered code {code}: {message}")
