"""The user's own callback handler (FORWARD_URL): one POST, no redirect followed, its answer unread."""

from collections.abc import Mapping

import urllib3

from kie2s3.errors import RetryableError


class WebhookClient:
    """POSTs a body to a URL through the source-checked pool (adapters/safe_http.py): https only
    (http on loopback in local mode), public addresses only, a redirect answered is never followed,
    no retries here (the forward queue owns them), and the answer's body is never read or logged.

    Raises RetryableError for network faults and timeouts, SourceRefusedError for a target the
    policy refuses (a name resolving to a private address, say); any HTTP status is returned.
    """

    def __init__(self, http: urllib3.PoolManager) -> None:
        self._http = http

    def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_seconds: float) -> int:
        """The HTTP status the target answered."""
        try:
            response = self._http.request(
                "POST",
                url,
                body=body,
                headers=dict(headers),
                timeout=urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds),
                redirect=False,
                retries=False,
                preload_content=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise RetryableError(f"forward target unreachable: {type(exc).__name__}") from exc
        # The connection is closed, not returned to the pool: its unread answer could be endless.
        response.close()
        return response.status
