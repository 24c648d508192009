"""The source policy: which URLs kie2s3 may download from; a URL's canonical form (identity and display).

One parser reads every URL, urllib3's own (the one that connects): the policy judges the host it
parsed, so the host judged is the host dialled. Before that parse, the authority (scheme, userinfo,
host, port) must be plain enough that no other parser could read it differently: ASCII letters,
digits, dots and hyphens (or a bracketed IPv6 literal) and a decimal port, nothing else.
"""

import ipaddress
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from urllib.parse import quote, unquote

from urllib3.exceptions import LocationParseError
from urllib3.util import Url, parse_url

from kie2s3.errors import SourceRefusedError

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# RFC 6598 shared address space (carrier-grade NAT): not global, yet not `is_private` in every Python.
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
# RFC 6052 NAT64 well-known prefix: the last 32 bits are an IPv4 address a NAT64 gateway would reach.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_DEFAULT_PORTS = {"http": 80, "https": 443}

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# The whole authority a strict reader accepts: a host name or bracketed IPv6 literal, an optional port.
_AUTHORITY = re.compile(
    rf"(?P<host>(?:{_LABEL}\.)*{_LABEL}\.?|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{{1,5}}))?"
)
# C0 and C1 controls, DEL, and the separators parsers strip silently (tab, CR, LF among the C0).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# What a server may ignore at either end of a path segment: blanks and controls.
_IGNORED = " \t\n\r\x0b\x0c" + "".join(map(chr, range(0x20))) + "\x7f"
# Everything printable in ASCII but the space: what `_ascii` leaves as it is (escapes stay escapes).
_PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F))


def _ascii(text: str) -> str:
    """Spaces, controls and non-ASCII percent-encoded as UTF-8; existing escapes left alone."""
    return quote(text, safe=_PRINTABLE)


def _authority(url: str) -> str:
    """The URL's authority (what stands between `scheme://` and the first / ? or #, as RFC 3986
    reads it; urllib3 also ends it at a backslash, which the caller refuses); SourceRefusedError when
    the URL has no plain `scheme://`."""
    scheme, separator, rest = url.partition("://")
    if not separator or not _SCHEME.fullmatch(scheme):
        named = _SCHEME.match(url)
        scheme = named[0] if named and url[named.end() : named.end() + 1] == ":" else "(none)"
        raise SourceRefusedError(f"source scheme {scheme!r} is not allowed (expected scheme://host/path)")
    return re.split(r"[/?#]", rest, maxsplit=1)[0]


def parse_source(url: str) -> Url:
    """urllib3's parse of a URL whose authority no two parsers could read differently.

    SourceRefusedError for control characters anywhere, userinfo, and an authority with anything
    but ASCII letters, digits, dots, hyphens, a bracketed IPv6 literal and a decimal port
    (backslashes, whitespace, percent-encoded or full-width dots, IDNA forms: all refused).
    """
    if _CONTROL.search(url):
        raise SourceRefusedError("source URL has control characters")
    authority = _authority(url)
    if "@" in authority:
        raise SourceRefusedError("source URL carries credentials")
    strict = _AUTHORITY.fullmatch(authority)
    if authority and strict is None:
        raise SourceRefusedError(
            "source host is not a plain host name (ASCII letters, digits, dots, hyphens; labels up to 63)"
        )
    try:
        parsed = parse_url(url)
    except (LocationParseError, ValueError) as exc:
        raise SourceRefusedError(f"source is not a valid URL: {canonical_url(url)}") from exc
    if strict is not None:
        port = int(strict["port"]) if strict["port"] else None
        if (parsed.host, parsed.port) != (strict["host"].lower(), port):
            raise SourceRefusedError("source URL's host reads differently to different parsers")
    return parsed


# A request's files are deduplicated, recorded, keyed and listed by their canonical source, each
# step asking again, and a task's recorded sources are read back through it: one parse per distinct
# URL. 256 forms kept: a request's files with those of a task of 200 recorded; at the longest URLs
# of four-byte characters (MAX_URL_CHARS) that is about 16 MiB.
@lru_cache(maxsize=256)
def canonical_url(url: str) -> str:
    """A source's identity, and the only form of it that is stored or logged: never raises.

    urllib3's parse with scheme and host lower-cased, the default port dropped, dot segments
    removed, the path percent-encoded (a space is %20, non-ASCII UTF-8 escapes), and no userinfo,
    query or fragment (presigned links carry keys there). Always printable ASCII. Text urllib3
    cannot parse keeps its own characters up to any `?` or `#`, percent-encoded the same way.
    """
    try:
        parsed = parse_url(url.strip())
    except (LocationParseError, ValueError):
        return _ascii(re.split(r"[?#]", url.strip(), maxsplit=1)[0])
    scheme = (parsed.scheme or "").lower()
    netloc = parsed.host or ""
    if parsed.port is not None and parsed.port != _DEFAULT_PORTS.get(scheme):
        netloc = f"{netloc}:{parsed.port}"
    head = f"{scheme}://{netloc}" if scheme else netloc
    return _ascii(f"{head}{parsed.path or '/'}")


def url_path(url: str) -> str:
    """The path of a URL's canonical form (percent-encoded; "/" when it has none): never raises."""
    return "/" + canonical_url(url).split("://", 1)[-1].partition("/")[2]


def served_path(url: str) -> str:
    """The path a server may route a URL to, in lower case: never raises.

    What servers and the proxies before them do to a path, all of it: percent-decoding (again
    while escapes remain: `%252F` is `/` to a server that decodes twice), `\\` read as `/`,
    parameters dropped (`kie;a`), blanks, controls and trailing dots trimmed from each segment
    (`kie%20`, `kie.`), empty and `.` segments dropped, `..` applied. So `/callbacks//kie`,
    `/callbacks/%6bie` and `/callbacks%2Fkie;a` all serve `/callbacks/kie`; `/` when nothing is left.
    """
    path = url_path(url)
    while (decoded := unquote(path)) != path:
        path = decoded
    segments: list[str] = []
    for raw in path.replace("\\", "/").split("/"):
        segment = raw.split(";", 1)[0].strip(_IGNORED)
        if segment == "..":
            segments = segments[:-1]
        elif (segment := segment.rstrip("." + _IGNORED)) and segment != ".":
            segments.append(segment)
    return "/" + "/".join(segments).lower()


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
        """The URL's host as urllib3 parses it (lower-cased) and whether it is a permitted local one."""
        parsed = parse_source(url)
        host = (parsed.host or "").strip("[]")
        local = self.allow_local and _is_loopback(host)
        scheme = (parsed.scheme or "").lower()
        if scheme != "https" and not (local and scheme == "http"):
            raise SourceRefusedError(f"source scheme {scheme or '(none)'!r} is not allowed")
        if not host:
            raise SourceRefusedError("source URL has no host")
        return host, local
