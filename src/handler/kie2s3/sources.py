"""The source policy: which URLs kie2s3 may download from, and how URLs are shown without secrets."""

import ipaddress
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import urlsplit, urlunsplit

from kie2s3.errors import SourceRefusedError

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# RFC 6598 shared address space (carrier-grade NAT): not global, yet not `is_private` in every Python.
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
# RFC 6052 NAT64 well-known prefix: the last 32 bits are an IPv4 address a NAT64 gateway would reach.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


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


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    if host in _LOCAL_NAMES:
        return True
    address = _literal_address(host)
    return address is not None and _embedded(address).is_loopback


def _embedded(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo, NAT64), else the address itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address.teredo is not None:
            return address.teredo[1]
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def non_public_reason(address: IPAddress) -> str | None:
    """Why an address is not a public unicast one (loopback, private, link-local, ...); None if it is."""
    for candidate in dict.fromkeys((_embedded(address), address)):
        if candidate.is_loopback:
            return "loopback"
        if candidate.is_link_local:
            return "link-local (cloud metadata lives there)"
        if candidate.is_multicast:
            return "multicast"
        if candidate.is_unspecified:
            return "unspecified"
        if isinstance(candidate, ipaddress.IPv4Address) and candidate in _CGNAT:
            return "shared (CGNAT)"
        if candidate.is_reserved:
            return "reserved"
        if candidate.is_private:
            return "private"
        if not candidate.is_global:
            return "reserved"
    return None


@dataclass(frozen=True)
class SourcePolicy:
    """https only, to allowed host patterns (`host` or `*.suffix`), at public addresses only.

    `allow_local` (ALLOW_LOCAL_SOURCES, local emulation only) adds http and loopback hosts.
    `check` judges a URL as written; `check_address` judges each address a host name resolves
    to, at connection time (adapters/safe_http.py), so a name cannot point at an internal address.
    """

    allowed_hosts: tuple[str, ...]
    allow_local: bool = False

    def check(self, url: str) -> str:
        """Return the URL if it may be fetched; raise SourceRefusedError saying why not."""
        host, local = self._transport(url)
        if not local and not any(fnmatchcase(host, pattern) for pattern in self.allowed_hosts):
            raise SourceRefusedError(f"source host {host!r} is not in ALLOWED_SOURCE_HOSTS")
        self._check_literal(host)
        return url

    def check_endpoint(self, url: str) -> str:
        """Everything `check` asks except the host list: for kie.ai's API and every connection made."""
        host, _ = self._transport(url)
        self._check_literal(host)
        return url

    def check_address(self, host: str, address: str) -> None:
        """Refuse a connection to `address` (what `host` resolved to) unless it is public.

        Loopback passes only with `allow_local`; private, link-local (169.254.169.254, fd00:ec2::254),
        CGNAT, multicast, reserved and unspecified addresses never do, IPv4 inside IPv6 included.
        """
        parsed = _literal_address(address.split("%", 1)[0])
        if parsed is None:
            raise SourceRefusedError(f"source host {host!r} resolved to something that is not an address")
        reason = non_public_reason(parsed)
        if reason is None or (reason == "loopback" and self.allow_local):
            return
        raise SourceRefusedError(f"source host {host!r} resolves to a {reason} address: refused")

    def _check_literal(self, host: str) -> None:
        if (address := _literal_address(host)) is not None:
            self.check_address(host, str(address))

    def _transport(self, url: str) -> tuple[str, bool]:
        """The URL's host (lower-cased) and whether it is a permitted local one; refuses the rest."""
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
        if not host.isascii() or not host.isprintable() or " " in host:
            raise SourceRefusedError("source host has characters a host name never has")
        return host, local
