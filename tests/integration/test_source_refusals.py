"""Refused sources and links through the real handler: never fetched; a URL `POST /copies` names is
refused with 400, while a callback's source and every download link end `failed` with the reason.

Links are injected by replacing the emulator's download-url answer for one source URL (the
emulator only ever links to itself); the canary and the scripted servers record what reaches them.
"""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from devstack.callbacks import market_body
from devstack.lambda_runtime import function_environment, http_event
from devstack.stack import Stack
from tests import servers
from tests.integration.conftest import objects_under, post_callback, send, serve
from tests.servers import answer, canary, fake_dns, loopback_only, scripted, untouched_canary

from kie2s3.handlers.wiring import get_services

__all__ = ["canary", "fake_dns", "loopback_only", "scripted", "untouched_canary"]  # fixtures used here

pytestmark = pytest.mark.usefixtures("loopback_only", "untouched_canary")

KIE_SOURCE = "https://tempfile.aiquickdraw.com/p/{task_id}_0.png"
LinkTo = Callable[[servers.Script], tuple[str, servers.ScriptedServer]]
LIMIT = 4096


@pytest.fixture
def strict(stack: Stack) -> Iterator[Stack]:
    """The deployed policy (https, kie.ai's hosts, public addresses), copying inline."""
    with function_environment({**stack.env, "COPY_MODE": "inline", "ALLOW_LOCAL_SOURCES": "false"}):
        yield stack


@pytest.fixture
def local_small(stack: Stack) -> Iterator[Stack]:
    """Local sources allowed (the scripted servers are on loopback), MAX_FILE_BYTES of 4 KiB, inline."""
    with function_environment({**stack.env, "COPY_MODE": "inline", "MAX_FILE_BYTES": str(LIMIT)}):
        yield stack


@pytest.fixture
def kie_link(monkeypatch: pytest.MonkeyPatch, task_id: str) -> Callable[[str], str]:
    """`kie_link(link)`: a kie.ai source URL of this task whose download-url answer is `link`."""
    source = KIE_SOURCE.format(task_id=task_id)

    def set_link(link: str) -> str:
        monkeypatch.setattr(get_services().kie, "download_url", {source: link}.__getitem__)
        return source

    return set_link


@pytest.fixture
def link_to(scripted: servers.Start, kie_link: Callable[[str], str]) -> LinkTo:
    """A scripted server, and a kie.ai source URL whose download link points at it."""

    def start(script: servers.Script) -> tuple[str, servers.ScriptedServer]:
        server = scripted(script)
        return kie_link(server.url("/dl/x.png")), server

    return start


def _copy(task_id: str, *urls: str) -> dict[str, Any]:
    status, doc = send(http_event("POST", "/copies", body={"taskId": task_id, "urls": list(urls)}))
    assert status == 200, doc
    return doc


def _failed_with(doc: dict[str, Any], reason: str) -> None:
    assert doc["state"] == "failed"
    [file] = doc["files"]
    assert file["state"] == "failed"
    assert reason in file["error"]


def _refused(task_id: str, url: str, reason: str) -> None:
    """`POST /copies` answers 400 with the URL's reason, and records nothing."""
    status, answer = send(http_event("POST", "/copies", body={"taskId": task_id, "urls": [url]}))
    assert status == 400, answer
    [detail] = answer["details"]
    assert reason in detail
    assert send(http_event("GET", f"/tasks/{task_id}"))[0] == 404


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{port}/x.png", "scheme"),
        ("https://127.0.0.1:{port}/x.png", "not in ALLOWED_SOURCE_HOSTS"),
        ("https://localhost:{port}/x.png", "not in ALLOWED_SOURCE_HOSTS"),
        ("https://169.254.169.254/latest/meta-data/", "not in ALLOWED_SOURCE_HOSTS"),
        ("https://[fd00:ec2::254]/latest/meta-data/", "not in ALLOWED_SOURCE_HOSTS"),
        ("https://10.0.0.1/x.png", "not in ALLOWED_SOURCE_HOSTS"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://tempfile.aiquickdraw.com/x", "scheme"),
        ("https://user:pw@tempfile.aiquickdraw.com/x.png", "credentials"),
        ("https://evil.example.com/x.png", "not in ALLOWED_SOURCE_HOSTS"),
        ("https://evil.example\\.aiquickdraw.com/x.png", "plain host name"),
    ],
)
def test_copies_refused_source_is_400_without_any_request(
    strict: Stack, canary: servers.Canary, task_id: str, url: str, reason: str
) -> None:
    source = url.format(port=canary.port)
    _refused(task_id, source, reason)
    assert strict.emulator.download_url_calls[source] == 0


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1:{port}/x.png", "loopback"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[fd00:ec2::254]/latest/meta-data/", "private"),
        ("https://192.168.1.20/x.png", "private"),
    ],
)
def test_copies_internal_address_refused_even_when_every_host_is_allowed(
    stack: Stack, canary: servers.Canary, task_id: str, url: str, reason: str
) -> None:
    env = {**stack.env, "COPY_MODE": "inline", "ALLOW_LOCAL_SOURCES": "false", "ALLOWED_SOURCE_HOSTS": "*"}
    with function_environment(env):
        _refused(task_id, url.format(port=canary.port), reason)


def test_callback_refused_source_is_recorded_failed_without_any_request(
    strict: Stack, canary: servers.Canary, task_id: str
) -> None:
    # What kie.ai itself sends is acknowledged: a refused source becomes a `failed` file, unfetched.
    source = f"https://evil.example\\.aiquickdraw.com/{task_id}.png"
    status, doc = post_callback(market_body(task_id, [source]), task_id)
    assert status == 200
    _failed_with(doc, "plain host name")
    assert strict.emulator.download_url_calls[source] == 0


@pytest.mark.parametrize(
    ("link", "reason"),
    [
        ("https://evil.example.com/x.png?sig=abc", "not in ALLOWED_SOURCE_HOSTS"),
        ("http://127.0.0.1:{port}/dl/x.png?sig=abc", "scheme"),
        ("https://127.0.0.1:{port}/dl/x.png", "not in ALLOWED_SOURCE_HOSTS"),
        ("https://kie:secret@tempfile.aiquickdraw.com/dl/x.png", "credentials"),
        ("file:///var/task/app.py", "scheme"),
    ],
)
def test_copy_download_link_refused_is_failed_and_never_fetched(
    strict: Stack,
    canary: servers.Canary,
    kie_link: Callable[[str], str],
    task_id: str,
    link: str,
    reason: str,
) -> None:
    _failed_with(_copy(task_id, kie_link(link.format(port=canary.port))), reason)


@pytest.mark.parametrize(
    ("address", "reason"),
    [("127.0.0.1", "loopback"), ("169.254.169.254", "link-local"), ("10.2.3.4", "private")],
)
def test_copy_link_on_allowed_host_resolving_internal_is_refused(
    strict: Stack,
    canary: servers.Canary,
    fake_dns: servers.FakeDns,
    kie_link: Callable[[str], str],
    task_id: str,
    address: str,
    reason: str,
) -> None:
    # An allowed host name whose DNS answer is internal (or rebinds to it): refused at connection.
    fake_dns.answers["file.aiquickdraw.com"] = [address]
    source = kie_link(canary.url("/dl/x.png", scheme="https", host="file.aiquickdraw.com"))
    _failed_with(_copy(task_id, source), reason)
    assert fake_dns.lookups == ["file.aiquickdraw.com"]


@pytest.mark.parametrize(
    "location",
    ["http://127.0.0.1:{port}/stolen", "https://evil.example.com/x.png", "http://169.254.169.254/"],
)
def test_copy_redirect_fails_permanently_and_target_is_never_contacted(
    local_small: Stack, canary: servers.Canary, link_to: LinkTo, task_id: str, location: str
) -> None:
    target = location.format(port=canary.port)
    source, server = link_to(answer("302 Found", {"Location": target, "Content-Length": "0"}))
    _failed_with(_copy(task_id, source), "HTTP 302")
    assert len(server.requests) == 1  # permanent: not retried either


def test_copy_declared_length_over_limit_is_refused(local_small: Stack, task_id: str) -> None:
    served = serve(local_small, task_id, [(".png", LIMIT + 1)])
    _failed_with(_copy(task_id, *served), "MAX_FILE_BYTES")
    assert objects_under(local_small, f"kie/{task_id}/") == {}


def _endless(chunked: bool) -> servers.Script:
    def script(_: object) -> Iterator[bytes]:
        encoding = "Transfer-Encoding: chunked\r\n" if chunked else ""
        yield f"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n{encoding}\r\n".encode()
        block = b"\x89PNG" + b"\0" * 1020
        for _ in range(64):  # 64 KiB, sixteen times the limit; the client must stop reading first
            yield f"{len(block):x}\r\n".encode() + block + b"\r\n" if chunked else block
        if chunked:
            yield b"0\r\n\r\n"

    return script


@pytest.mark.parametrize("chunked", [False, True], ids=["close-delimited", "chunked"])
def test_copy_undeclared_length_over_limit_is_refused_by_bytes_read(
    local_small: Stack, link_to: LinkTo, task_id: str, chunked: bool
) -> None:
    source, _ = link_to(_endless(chunked))
    _failed_with(_copy(task_id, source), "MAX_FILE_BYTES")
    assert objects_under(local_small, f"kie/{task_id}/") == {}


def test_copy_body_longer_than_declared_stores_declared_bytes_only(
    local_small: Stack, link_to: LinkTo, task_id: str
) -> None:
    declared = b"\x89PNG\r\n\x1a\n" + b"\1" * 992
    source, _ = link_to(answer("200 OK", {"Content-Length": "1000"}, declared + b"\2" * (16 * LIMIT)))
    doc = _copy(task_id, source)
    assert doc["state"] == "copied"
    [file] = doc["files"]
    stored = local_small.client("s3").get_object(Bucket=local_small.bucket, Key=file["key"])["Body"].read()
    assert stored == declared
