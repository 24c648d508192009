"""Loopback servers and network guards for the security tests: the canary, scripted servers, fake DNS.

The canary is a loopback server that no test request may reach: refused URLs point at it. One
server serves the whole session, shared by every module that uses the `canary` fixture; it records
each TCP connection it accepts (whatever was sent on it, TLS included), and the fixture's teardown
at the end of the session fails if there was any.

`loopback_only` lets kie2s3.adapters.safe_http connect to loopback addresses only, so that a policy
bug can never send a test's request to a private or metadata address; `fake_dns` also makes host
names resolve, inside that module only, to chosen addresses.
"""

import ipaddress
import socket
import ssl
import threading
import types
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kie2s3.adapters import safe_http

Script = Callable[[BaseHTTPRequestHandler], Iterable[bytes]]


def answer(status: str, headers: dict[str, str], body: bytes = b"") -> Script:
    """A script that answers every request with the same status, headers and body."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    raw = f"HTTP/1.1 {status}\r\n{head}\r\n".encode() + body
    return lambda _: [raw]


class _RecordingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.connections: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def verify_request(self, request: Any, client_address: Any) -> bool:
        with self.lock:
            self.connections.append(client_address)
        return True


class ScriptedServer:
    """A loopback server whose every answer is raw bytes from a script (status line, headers, body):
    lying Content-Lengths, endless bodies and redirects included; over TLS when given a context.
    Records every connection, and each request's (method, path, headers)."""

    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        requests: list[tuple[str, str, dict[str, str]]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append((self.command, self.path, dict(self.headers.items())))
                try:
                    for chunk in script(self):
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading, as it should past a limit
                self.close_connection = True

            do_POST = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.requests = requests
        self._server = _RecordingServer(Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        # shutdown() waits for the serving loop's next poll: 50 ms rather than the default 0.5 s.
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="scripted", daemon=True
        ).start()

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1."""
        return int(self._server.server_address[1])

    @property
    def connections(self) -> list[tuple[str, int]]:
        """Every connection accepted so far."""
        with self._server.lock:
            return list(self._server.connections)

    def url(self, path: str = "/", *, scheme: str = "http", host: str = "127.0.0.1") -> str:
        """A URL that reaches this server (the host must resolve to 127.0.0.1)."""
        return f"{scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


Canary = ScriptedServer
Start = Callable[..., ScriptedServer]
_CANARY: list[Canary] = []


@pytest.fixture(scope="session")
def canary() -> Iterator[Canary]:
    """The session's canary; at the end of the session, it must have seen no connection at all."""
    if not _CANARY:
        _CANARY.append(ScriptedServer(answer("200 OK", {"Content-Length": "6"}, b"canary")))
    yield _CANARY[0]
    assert _CANARY[0].connections == [], f"a refused request reached the canary: {_CANARY[0].connections}"


@pytest.fixture
def untouched_canary(canary: Canary) -> Iterator[Canary]:
    """The canary, checked again right after the test, so that the offending test is the one that fails."""
    before = len(canary.connections)
    yield canary
    assert canary.connections[before:] == [], f"this test reached the canary: {canary.connections[before:]}"


@pytest.fixture
def scripted() -> Iterator[Start]:
    """Start scripted servers (`scripted(script, tls=None)`) for one test; all stop after it."""
    started: list[ScriptedServer] = []

    def start(script: Script, tls: ssl.SSLContext | None = None) -> ScriptedServer:
        started.append(ScriptedServer(script, tls))
        return started[-1]

    yield start
    for server in started:
        server.close()


class _LoopbackOnlySocket(socket.socket):
    def connect(self, address: Any) -> None:
        host = str(address[0]).split("%", 1)[0]
        if not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"the pool tried to connect to {host}: the policy let it through")
        super().connect(address)


class FakeDns:
    """Host name -> addresses for safe_http's lookups (none: the name does not exist; names not given
    resolve as usual); records every lookup."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.lookups: list[str] = []

    def __call__(self, host: Any, port: Any, family: int = 0, kind: int = 0, *args: Any) -> list[Any]:
        self.lookups.append(str(host))
        if host not in self.answers:
            return socket.getaddrinfo(host, port, family, kind, *args)
        if not self.answers[host]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        found = []
        for address in self.answers[host]:
            v6 = ":" in address
            sockaddr = (address, int(port), 0, 0) if v6 else (address, int(port))
            found.append((socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM, 6, "", sockaddr))
        return found


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """safe_http's sockets may connect to loopback addresses only (AssertionError otherwise)."""
    guarded = types.SimpleNamespace(**vars(socket))
    guarded.socket = _LoopbackOnlySocket
    monkeypatch.setattr(safe_http, "socket", guarded)
    return guarded


@pytest.fixture
def fake_dns(loopback_only: types.SimpleNamespace) -> FakeDns:
    """Names resolve as `answers` says within safe_http (whose sockets may reach loopback only)."""
    dns = FakeDns()
    loopback_only.getaddrinfo = dns
    return dns
