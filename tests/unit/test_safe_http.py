"""The safe HTTP pool: every address checked, the checked address dialled, TLS kept on the host name."""

import datetime
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests import servers
from tests.servers import answer, canary, fake_dns, loopback_only, scripted

from kie2s3.adapters.safe_http import SafePoolManager
from kie2s3.errors import SourceRefusedError
from kie2s3.settings import DEFAULT_SOURCE_HOSTS
from kie2s3.sources import SourcePolicy

__all__ = ["canary", "fake_dns", "loopback_only", "scripted"]  # fixtures used here

pytestmark = pytest.mark.usefixtures("loopback_only")

DEPLOYED = SourcePolicy(DEFAULT_SOURCE_HOSTS)
LOCAL = SourcePolicy(DEFAULT_SOURCE_HOSTS, allow_local=True)
KIE_HOST = "tempfile.aiquickdraw.com"
INTERNAL = [
    ("169.254.169.254", "link-local"),
    ("fd00:ec2::254", "private"),
    ("fe80::1", "link-local"),
    ("10.0.0.7", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "CGNAT"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.251", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("192.0.2.1", "private"),  # documentation range
    ("198.18.0.1", "private"),
    ("::ffff:169.254.169.254", "link-local"),
    ("::ffff:10.0.0.1", "private"),
    ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 around 169.254.169.254
    ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 around 169.254.169.254
]


def pool(policy: SourcePolicy = DEPLOYED, **kw: Any) -> SafePoolManager:
    return SafePoolManager(policy, retries=False, timeout=urllib3.Timeout(connect=2, read=5), **kw)


@pytest.mark.parametrize(("address", "reason"), INTERNAL)
def test_pool_refuses_name_resolving_to_internal_address(
    fake_dns: servers.FakeDns, address: str, reason: str
) -> None:
    fake_dns.answers[KIE_HOST] = [address]
    with pytest.raises(SourceRefusedError, match=reason):
        pool(LOCAL).request("GET", f"https://{KIE_HOST}/p/a.png")


@pytest.mark.parametrize("address", ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"])
def test_pool_refuses_name_resolving_to_loopback_when_local_is_off(
    fake_dns: servers.FakeDns, canary: servers.Canary, address: str
) -> None:
    fake_dns.answers[KIE_HOST] = [address]
    with pytest.raises(SourceRefusedError, match="loopback"):
        pool().request("GET", canary.url("/p/a.png", scheme="https", host=KIE_HOST))


def test_pool_refuses_when_any_answer_is_internal(fake_dns: servers.FakeDns, canary: servers.Canary) -> None:
    # The first answer alone would pass (loopback, local on): the whole name is refused all the same.
    fake_dns.answers["files.example"] = ["127.0.0.1", "10.9.8.7"]
    with pytest.raises(SourceRefusedError, match="private"):
        pool(LOCAL).request("GET", canary.url("/x", scheme="https", host="files.example"))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{port}/x", "scheme"),
        ("https://127.0.0.1:{port}/x", "loopback"),
        ("https://[::1]:{port}/x", "loopback"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[fd00:ec2::254]/latest/meta-data/", "private"),
        ("https://user:pw@127.0.0.1:{port}/x", "credentials"),
        ("ftp://127.0.0.1:{port}/x", "scheme"),
        ("file:///etc/passwd", "scheme"),
    ],
)
def test_pool_refuses_urls_before_connecting(canary: servers.Canary, url: str, reason: str) -> None:
    with pytest.raises(SourceRefusedError, match=reason):
        pool().request("GET", url.format(port=canary.port))


def test_pool_local_mode_refuses_private_literal(canary: servers.Canary) -> None:
    with pytest.raises(SourceRefusedError, match="private"):
        pool(LOCAL).request("GET", "https://10.0.0.1/x")


def test_pool_connects_to_the_checked_address_without_resolving_again(
    fake_dns: servers.FakeDns, scripted: servers.Start
) -> None:
    server = scripted(answer("200 OK", {"Content-Length": "2"}, b"ok"))
    fake_dns.answers["localhost"] = ["127.0.0.1"]
    response = pool(LOCAL).request("GET", server.url("/a.png", host="localhost"))
    assert (response.status, response.data) == (200, b"ok")
    # One lookup, then that answer is dialled: a rebinding resolver gets no second question.
    assert fake_dns.lookups == ["localhost"]
    assert server.requests[0][2]["Host"] == f"localhost:{server.port}"


def test_pool_redirect_to_internal_address_is_refused(
    scripted: servers.Start, canary: servers.Canary
) -> None:
    # Redirects are not followed by the download code; a caller that followed them would be checked too.
    server = scripted(
        answer("302 Found", {"Location": "https://169.254.169.254/latest/", "Content-Length": "0"})
    )
    with pytest.raises(SourceRefusedError, match="link-local"):
        pool(LOCAL).request("GET", server.url("/a.png"), redirect=True, retries=urllib3.Retry(redirect=1))


def test_pool_refusal_leaves_pool_usable(scripted: servers.Start) -> None:
    shared = pool(LOCAL)
    with pytest.raises(SourceRefusedError):
        shared.request("GET", "http://10.0.0.1/x")
    server = scripted(answer("200 OK", {"Content-Length": "2"}, b"ok"))
    assert shared.request("GET", server.url()).data == b"ok"


def test_pool_unknown_name_is_a_urllib3_error(fake_dns: servers.FakeDns) -> None:
    # urllib3's own errors are what the adapters translate into RetryableError.
    fake_dns.answers[KIE_HOST] = []
    with pytest.raises(urllib3.exceptions.NameResolutionError):
        pool().request("GET", f"https://{KIE_HOST}/p/a.png")


def test_pool_refused_connection_is_a_urllib3_error(scripted: servers.Start) -> None:
    server = scripted(answer("200 OK", {"Content-Length": "0"}))
    closed = server.url("/x")
    server.close()
    with pytest.raises(urllib3.exceptions.NewConnectionError):
        pool(LOCAL).request("GET", closed)


def test_pool_connect_timeout_bounds_the_connect_whatever_the_addresses(fake_dns: servers.FakeDns) -> None:
    # A listener whose accept queue is full drops every SYN: each dial waits until its timeout.
    with (
        socket.create_server(("127.0.0.1", 0), backlog=0) as silent,
        socket.create_connection(silent.getsockname()),
    ):
        fake_dns.answers["localhost"] = ["127.0.0.1"] * 4
        connect = 0.4
        slow = SafePoolManager(LOCAL, retries=False, timeout=urllib3.Timeout(connect=connect, read=5))
        began = time.monotonic()
        with pytest.raises(urllib3.exceptions.ConnectTimeoutError):
            slow.request("GET", f"http://localhost:{silent.getsockname()[1]}/x")
        took = time.monotonic() - began
    assert connect * 0.9 <= took < connect * 1.5, took  # one connect timeout, not one per address
    assert fake_dns.lookups == ["localhost"]


def test_pool_refuses_unencodable_host() -> None:
    with pytest.raises(SourceRefusedError, match="plain host name"):
        pool(SourcePolicy(("*",))).request("GET", f"https://{'a' * 64}.example/x")


# -- TLS: the dialled address is fixed, SNI and certificate checks stay on the host name -----------


def _certificate(tmp: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / f"{name}.pem", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


TlsServer = tuple[servers.ScriptedServer, Path, list[str]]  # the server, its certificate, the SNI names


@pytest.fixture
def tls_server(tmp_path: Path, scripted: servers.Start) -> TlsServer:
    """A TLS server on loopback with a certificate for KIE_HOST; the SNI names it was sent."""
    cert, key = _certificate(tmp_path, KIE_HOST)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names: list[str] = []
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)
    return scripted(answer("200 OK", {"Content-Length": "3"}, b"tls"), tls=context), cert, names


def test_pool_tls_verifies_certificate_and_sends_sni_for_host_name(
    fake_dns: servers.FakeDns, tls_server: TlsServer
) -> None:
    server, cert, names = tls_server
    fake_dns.answers[KIE_HOST] = ["127.0.0.1"]
    response = pool(LOCAL, ca_certs=str(cert)).request(
        "GET", server.url("/p/a.png", scheme="https", host=KIE_HOST)
    )
    assert (response.status, response.data) == (200, b"tls")
    assert names == [KIE_HOST]
    assert fake_dns.lookups == [KIE_HOST]


def test_pool_tls_refuses_certificate_of_another_name(
    fake_dns: servers.FakeDns, tls_server: TlsServer
) -> None:
    server, cert, _ = tls_server
    fake_dns.answers["file.aiquickdraw.com"] = ["127.0.0.1"]
    with pytest.raises(urllib3.exceptions.SSLError, match=r"file\.aiquickdraw\.com"):
        pool(LOCAL, ca_certs=str(cert)).request("GET", f"https://file.aiquickdraw.com:{server.port}/x")


def test_pool_tls_refuses_unknown_issuer(fake_dns: servers.FakeDns, tls_server: TlsServer) -> None:
    server, _, _ = tls_server
    fake_dns.answers[KIE_HOST] = ["127.0.0.1"]
    with pytest.raises(urllib3.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        pool(LOCAL).request("GET", f"https://{KIE_HOST}:{server.port}/x")
