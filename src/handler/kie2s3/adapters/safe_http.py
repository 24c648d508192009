"""An HTTP pool that connects only to public addresses: each host is resolved once, checked, then dialled.

Checking a URL's host name and letting the HTTP library resolve it again when it connects leaves a
gap (DNS rebinding: the second answer can be 169.254.169.254). Here the connection itself resolves
the name, has every address it got judged by the source policy, and connects to those very
addresses; TLS still sends SNI for, and verifies the certificate against, the host name.
"""

import socket
import sys
import time
from typing import Any

from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    LocationParseError,
    NameResolutionError,
    NewConnectionError,
)
from urllib3.response import BaseHTTPResponse
from urllib3.util.connection import allowed_gai_family

from kie2s3.sources import SourcePolicy

_SockAddr = tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes]


class CheckedHTTPConnection(HTTPConnection):
    """An HTTP connection that dials only addresses its source policy accepts (SourceRefusedError else)."""

    def __init__(self, host: str, port: int | None = None, *, source_policy: SourcePolicy, **kw: Any) -> None:
        self.source_policy = source_policy
        super().__init__(host, port, **kw)

    def _resolve(self) -> list[tuple[socket.AddressFamily, socket.SocketKind, int, _SockAddr]]:
        host = self.host.strip("[]")
        try:
            host.encode("idna")
        except UnicodeError:
            raise LocationParseError(f"'{host}', label empty or too long") from None
        try:
            found = socket.getaddrinfo(host, self.port, allowed_gai_family(), socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        # Every address is judged before any is dialled: a name that mixes public and internal
        # answers is refused whole, whichever answer a connect would have picked.
        for *_, address in found:
            self.source_policy.check_address(host, str(address[0]))
        return [(family, kind, proto, address) for family, kind, proto, _, address in found]

    def _new_conn(self) -> socket.socket:
        """Dial the checked addresses in turn. The connect timeout bounds the whole connect, however
        many addresses the name has: each gets an equal share of what is left (one that fails fast
        leaves its share to the next), so a caller counts one connect timeout per request
        (kie2s3/retries.py, KieTimeouts)."""
        error: OSError | None = None
        addresses = self._resolve()
        budget = self.timeout if isinstance(self.timeout, int | float) else None
        ends = None if budget is None else time.monotonic() + budget
        for position, (family, kind, proto, address) in enumerate(addresses):
            sock = socket.socket(family, kind, proto)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                if ends is not None:
                    sock.settimeout(max(ends - time.monotonic(), 0.001) / (len(addresses) - position))
                elif self.timeout is None:
                    sock.settimeout(None)
                if self.source_address:
                    sock.bind(self.source_address)
                sock.connect(address)
                if ends is not None:
                    sock.settimeout(budget)  # the TLS handshake waits as urllib3's own connections do
            except OSError as exc:
                sock.close()
                error = exc
                continue
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        if isinstance(error, TimeoutError):
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from error
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}") from error


class CheckedHTTPSConnection(CheckedHTTPConnection, HTTPSConnection):
    """The same over TLS: certificate and SNI stay on the host name, only the dialled address is fixed."""


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = CheckedHTTPSConnection


class SafePoolManager(PoolManager):
    """A PoolManager whose every request passes `policy.check_endpoint` and every connection its address check.

    The host allow-list (`policy.check`) stays with the caller: kie.ai's API host is not a source
    host, yet it goes through this pool too. Redirects, when a caller follows them, are requests
    of their own and are checked the same way.
    """

    def __init__(self, policy: SourcePolicy, **kw: Any) -> None:
        super().__init__(**kw)
        self.policy = policy
        self.pool_classes_by_scheme = {"http": _CheckedHTTPPool, "https": _CheckedHTTPSPool}

    def _new_pool(
        self, scheme: str, host: str, port: int, request_context: dict[str, Any] | None = None
    ) -> HTTPConnectionPool:
        context = dict(self.connection_pool_kw if request_context is None else request_context)
        context["source_policy"] = self.policy  # the pool hands it to every connection it makes
        return super()._new_pool(scheme, host, port, context)

    def urlopen(  # type: ignore[override]  # the signature of PoolManager.urlopen, as urllib3 has it
        self, method: str, url: str, redirect: bool = True, **kw: Any
    ) -> BaseHTTPResponse:
        """Refuse URLs the policy refuses before any connection is made; then as PoolManager.urlopen."""
        self.policy.check_endpoint(url)
        return super().urlopen(method, url, redirect=redirect, **kw)
