"""The source policy: which URLs kie2s3 may download from, and how URLs are shown without secrets."""

import ipaddress
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import urlsplit, urlunsplit

from kie2s3.errors import SourceRefusedError

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})


def public_url(url: str) -> str:
    """The URL without query, fragment or credentials: safe to log and store (presigned links carry keys)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
    except ValueError:
        return "<unparseable url>"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _is_loopback(host: str) -> bool:
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class SourcePolicy:
    """https only, to allowed host patterns (`host` or `*.suffix`); local emulation adds http and loopback."""

    allowed_hosts: tuple[str, ...]
    allow_local: bool = False

    def check(self, url: str) -> str:
        """Return the URL if it may be fetched; raise SourceRefusedError saying why not."""
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            _ = parts.port  # raises on a malformed port
        except ValueError as exc:
            raise SourceRefusedError(f"source is not a valid URL: {public_url(url)}") from exc
        local = self.allow_local and _is_loopback(host)
        if parts.scheme != "https" and not (local and parts.scheme == "http"):
            raise SourceRefusedError(f"source scheme {parts.scheme or '(none)'!r} is not allowed")
        if parts.username or parts.password:
            raise SourceRefusedError("source URL carries credentials")
        if not host:
            raise SourceRefusedError("source URL has no host")
        if not local and not any(fnmatchcase(host, pattern) for pattern in self.allowed_hosts):
            raise SourceRefusedError(f"source host {host!r} is not in ALLOWED_SOURCE_HOSTS")
        return url
