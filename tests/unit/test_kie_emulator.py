"""Tests of the kie.ai emulator, run as a real HTTP server on loopback."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import urllib3
from devstack.kie_emulator import (
    BLOCK_SIZE,
    RECORD_INFO_PATHS,
    FileFault,
    KieEmulator,
    SyntheticFile,
    send_callback,
    sign,
)

API_KEY = "unit-test-key"
REPO_ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[KieEmulator]:
    with KieEmulator(api_key=API_KEY, clock=clock) as emu:
        yield emu


@pytest.fixture
def http() -> Iterator[urllib3.PoolManager]:
    pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=5))
    yield pool
    pool.clear()


def auth(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def download_url(http: urllib3.PoolManager, emu: KieEmulator, url: str, key: str = API_KEY) -> Any:
    response = http.request(
        "POST", f"{emu.base_url}/api/v1/common/download-url", json={"url": url}, headers=auth(key)
    )
    assert response.status == 200
    return response.json()


def resolve(http: urllib3.PoolManager, emu: KieEmulator, url: str) -> str:
    envelope = download_url(http, emu, url)
    assert envelope["code"] == 200, envelope
    return str(envelope["data"])


def full_bytes(file: SyntheticFile) -> bytes:
    return b"".join(file.iter_bytes())


# --- download-url ------------------------------------------------------------------------------


def test_download_url_success_link_downloads_exact_bytes(
    emulator: KieEmulator, http: urllib3.PoolManager
) -> None:
    file = SyntheticFile("p/abc_0.png", 3 * BLOCK_SIZE + 12345, "image/png", seed=7)
    result_url = emulator.add_file(file)
    assert result_url == f"{emulator.base_url}/files/p/abc_0.png"

    envelope = download_url(http, emulator, result_url)
    assert envelope["code"] == 200
    assert envelope["msg"] == "success"
    link = envelope["data"]
    assert isinstance(link, str)
    assert link.startswith(f"{emulator.base_url}/dl/p/abc_0.png?expires=")

    response = http.request("GET", link, preload_content=False)
    digest = hashlib.sha256()
    for piece in response.stream(64 * 1024):
        digest.update(piece)
    assert response.status == 200
    assert response.headers["Content-Length"] == str(file.size)
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["ETag"]
    assert response.headers["Last-Modified"].endswith("GMT")
    assert digest.hexdigest() == file.sha256_hex()
    assert emulator.download_url_calls[result_url] == 1
    assert emulator.file_requests["p/abc_0.png"] == 1
    assert emulator.bytes_served == file.size


def test_download_url_result_url_with_a_literal_space_is_served_as_given(
    emulator: KieEmulator, http: urllib3.PoolManager
) -> None:
    # Suno stem names hold spaces (`…_Lead Vocal.mp3`), written unencoded in the callback.
    file = SyntheticFile("r/eb7d_Lead Vocal.mp3", 5000, "audio/mpeg", seed=3)
    result_url = emulator.add_file(file, result_url="https://tempfile.aiquickdraw.com/r/eb7d_Lead Vocal.mp3")
    link = resolve(http, emulator, result_url)
    assert link.startswith(f"{emulator.base_url}/dl/r/eb7d_Lead%20Vocal.mp3?expires=")
    response = http.request("GET", link)
    assert response.status == 200
    assert hashlib.sha256(response.data).hexdigest() == file.sha256_hex()
    assert emulator.download_url_calls[result_url] == 1
    assert emulator.file_requests["r/eb7d_Lead Vocal.mp3"] == 1


@pytest.mark.parametrize("key", ["wrong-key", ""])
def test_download_url_bad_key_returns_401_envelope(
    emulator: KieEmulator, http: urllib3.PoolManager, key: str
) -> None:
    url = emulator.add_file(SyntheticFile("a.png", 100, "image/png"))
    headers = auth(key) if key else {}
    response = http.request(
        "POST", f"{emulator.base_url}/api/v1/common/download-url", json={"url": url}, headers=headers
    )
    assert response.status == 200
    assert response.json() == {"code": 401, "msg": "You do not have access permissions", "data": None}


def test_download_url_foreign_url_returns_422(emulator: KieEmulator, http: urllib3.PoolManager) -> None:
    envelope = download_url(http, emulator, "https://example.com/cat.png")
    assert envelope["code"] == 422
    assert envelope["msg"] == "Invalid URL (External file URLs are not supported)"
    assert envelope["data"] is None


def test_download_url_bad_body_returns_422(emulator: KieEmulator, http: urllib3.PoolManager) -> None:
    endpoint = f"{emulator.base_url}/api/v1/common/download-url"
    for body in (b"not json", b'{"nourl": 1}'):
        response = http.request("POST", endpoint, body=body, headers=auth())
        assert response.status == 200
        assert response.json()["code"] == 422


def test_download_url_injected_429_twice_then_success(
    emulator: KieEmulator, http: urllib3.PoolManager
) -> None:
    url = emulator.add_file(SyntheticFile("v/clip.mp4", 1000, "video/mp4"))
    emulator.inject_download_url(429, times=2)
    first, second = download_url(http, emulator, url), download_url(http, emulator, url)
    assert first == {"code": 429, "msg": "Rate limited", "data": None}
    assert second["code"] == 429
    assert download_url(http, emulator, url)["code"] == 200
    assert emulator.download_url_calls[url] == 3


@pytest.mark.parametrize(
    ("code", "msg"),
    [(402, None), (455, "Service unavailable"), (500, None), (505, "The feature is disabled")],
)
def test_download_url_injected_codes_use_kie_messages(
    emulator: KieEmulator, http: urllib3.PoolManager, code: int, msg: str | None
) -> None:
    url = emulator.add_file(SyntheticFile("x.jpg", 10, "image/jpeg"))
    emulator.inject_download_url(code)
    envelope = download_url(http, emulator, url)
    assert envelope["code"] == code
    assert envelope["data"] is None
    if msg is not None:
        assert envelope["msg"] == msg


def test_download_url_injected_for_one_url_spares_others(
    emulator: KieEmulator, http: urllib3.PoolManager
) -> None:
    a = emulator.add_file(SyntheticFile("a.png", 10, "image/png"))
    b = emulator.add_file(SyntheticFile("b.png", 10, "image/png"))
    emulator.inject_download_url(500, url=b)
    assert download_url(http, emulator, a)["code"] == 200
    assert download_url(http, emulator, b)["code"] == 500
    assert download_url(http, emulator, b)["code"] == 200


# --- file links --------------------------------------------------------------------------------


def test_raw_result_url_returns_403(emulator: KieEmulator, http: urllib3.PoolManager) -> None:
    url = emulator.add_file(SyntheticFile("p/raw.png", 100, "image/png"))
    response = http.request("GET", url)
    assert response.status == 403
    assert b"1010" in response.data


def test_download_link_expired_returns_403(
    emulator: KieEmulator, http: urllib3.PoolManager, clock: FakeClock
) -> None:
    link = resolve(http, emulator, emulator.add_file(SyntheticFile("p/old.png", 100, "image/png")))
    clock.now += 1199
    assert http.request("GET", link).status == 200
    clock.now += 2
    response = http.request("GET", link)
    assert response.status == 403
    assert b"AccessDenied" in response.data
    assert b"Request has expired" in response.data


def test_download_link_bad_signature_returns_403(emulator: KieEmulator, http: urllib3.PoolManager) -> None:
    link = resolve(http, emulator, emulator.add_file(SyntheticFile("p/s.png", 100, "image/png")))
    tampered = link[:-4] + ("0000" if not link.endswith("0000") else "1111")
    assert http.request("GET", tampered).status == 403
    other_name = link.replace("/dl/p/s.png", "/dl/p/t.png")
    assert http.request("GET", other_name).status == 403


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 100),
        ("bytes=1048570-1048600", 1048570, 1048601),
        ("bytes=2000000-", 2000000, 2100000),
        ("bytes=-500", 2099500, 2100000),
        ("bytes=2099990-99999999", 2099990, 2100000),
        ("bytes=-99999999", 0, 2100000),
    ],
)
def test_download_link_range_returns_206_with_exact_bytes(
    emulator: KieEmulator, http: urllib3.PoolManager, header: str, start: int, end: int
) -> None:
    file = SyntheticFile("v/range.mp4", 2_100_000, "video/mp4", seed=3)
    link = resolve(http, emulator, emulator.add_file(file))
    response = http.request("GET", link, headers={"Range": header})
    assert response.status == 206
    assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/{file.size}"
    assert response.headers["Content-Length"] == str(end - start)
    assert response.data == file.read(start, end - start)


@pytest.mark.parametrize("header", ["bytes=2100000-", "bytes=5000000-5000010", "bytes=-0"])
def test_download_link_unsatisfiable_range_returns_416(
    emulator: KieEmulator, http: urllib3.PoolManager, header: str
) -> None:
    file = SyntheticFile("v/r416.mp4", 2_100_000, "video/mp4")
    link = resolve(http, emulator, emulator.add_file(file))
    response = http.request("GET", link, headers={"Range": header})
    assert response.status == 416
    assert response.headers["Content-Range"] == "bytes */2100000"


def test_download_link_empty_file_range_is_416_and_get_is_empty(
    emulator: KieEmulator, http: urllib3.PoolManager
) -> None:
    file = SyntheticFile("p/empty.png", 0, "image/png")
    link = resolve(http, emulator, emulator.add_file(file))
    ranged = http.request("GET", link, headers={"Range": "bytes=0-5242879"})
    assert ranged.status == 416
    assert ranged.headers["Content-Range"] == "bytes */0"
    whole = http.request("GET", link)
    assert whole.status == 200
    assert whole.headers["Content-Length"] == "0"
    assert whole.data == b""
    assert file.sha256_hex() == hashlib.sha256(b"").hexdigest()


def test_download_link_if_range_with_current_validator_serves_the_range(
    emulator: KieEmulator, http: urllib3.PoolManager
) -> None:
    file = SyntheticFile("v/ifr.mp4", 10_000, "video/mp4")
    link = resolve(http, emulator, emulator.add_file(file))
    opening = http.request("GET", link, headers={"Range": "bytes=0-99"})
    for validator in (opening.headers["ETag"], opening.headers["Last-Modified"]):
        response = http.request("GET", link, headers={"Range": "bytes=100-199", "If-Range": validator})
        assert response.status == 206
        assert response.data == file.read(100, 100)


@pytest.mark.parametrize("validator", ['"stale"', "W/{etag}", "Mon, 01 Jan 2024 00:00:00 GMT"])
def test_download_link_if_range_with_another_validator_serves_the_whole_file(
    emulator: KieEmulator, http: urllib3.PoolManager, validator: str
) -> None:
    file = SyntheticFile("v/ifr2.mp4", 10_000, "video/mp4")
    link = resolve(http, emulator, emulator.add_file(file))
    etag = http.request("HEAD", link).headers["ETag"]
    response = http.request(
        "GET", link, headers={"Range": "bytes=100-199", "If-Range": validator.format(etag=etag)}
    )
    assert response.status == 200  # a weak tag never matches (RFC 9110 13.1.5)
    assert "Content-Range" not in response.headers
    assert response.data == full_bytes(file)


def test_file_fault_new_version_changes_bytes_and_validators_after_that_get(
    emulator: KieEmulator, http: urllib3.PoolManager
) -> None:
    file = SyntheticFile("v/changing.mp4", 10_000, "video/mp4")
    link = resolve(http, emulator, emulator.add_file(file))
    emulator.inject_file_fault(file.name, FileFault.new_version())
    first = http.request("GET", link, headers={"Range": "bytes=0-99"})
    assert first.data == file.read(0, 100)  # the GET the fault applies to still sees the old version
    old, new = emulator.versions(file.name)
    assert old is file
    assert (new.size, new.content_type) == (file.size, file.content_type)
    assert full_bytes(new) != full_bytes(file)
    later = http.request("GET", link, headers={"Range": "bytes=100-199"})
    assert later.status == 206
    assert later.data == new.read(100, 100)
    assert later.headers["ETag"] != first.headers["ETag"]
    modified = [email.utils.parsedate_to_datetime(r.headers["Last-Modified"]) for r in (first, later)]
    assert modified[1] > modified[0]  # later by a second at least, even within the same second
    pinned = http.request("GET", link, headers={"Range": "bytes=100-199", "If-Range": first.headers["ETag"]})
    assert (pinned.status, pinned.data) == (200, full_bytes(new))


def test_emulator_without_validators_sends_none_and_no_if_range_matches(
    emulator: KieEmulator, http: urllib3.PoolManager
) -> None:
    file = SyntheticFile("v/noval.mp4", 10_000, "video/mp4")
    link = resolve(http, emulator, emulator.add_file(file))
    etag = http.request("HEAD", link).headers["ETag"]
    emulator.validators = False
    ranged = http.request("GET", link, headers={"Range": "bytes=0-99"})
    assert ranged.status == 206
    assert "ETag" not in ranged.headers
    assert "Last-Modified" not in ranged.headers
    pinned = http.request("GET", link, headers={"Range": "bytes=0-99", "If-Range": etag})
    assert (pinned.status, pinned.data) == (200, full_bytes(file))


def test_emulator_ignoring_if_range_serves_the_range_of_a_new_version(
    emulator: KieEmulator, http: urllib3.PoolManager
) -> None:
    file = SyntheticFile("v/ignore.mp4", 10_000, "video/mp4")
    link = resolve(http, emulator, emulator.add_file(file))
    emulator.honour_if_range = False
    emulator.inject_file_fault(file.name, FileFault.new_version())
    etag = http.request("GET", link, headers={"Range": "bytes=0-99"}).headers["ETag"]
    response = http.request("GET", link, headers={"Range": "bytes=100-199", "If-Range": etag})
    assert response.status == 206
    assert response.headers["ETag"] != etag
    assert response.data == emulator.versions(file.name)[1].read(100, 100)


def test_download_link_head_and_keep_alive(emulator: KieEmulator, http: urllib3.PoolManager) -> None:
    file = SyntheticFile("s/song.mp3", 5000, "audio/mpeg")
    link = resolve(http, emulator, emulator.add_file(file))
    head = http.request("HEAD", link)
    assert head.status == 200
    assert head.headers["Content-Length"] == "5000"
    assert head.data == b""
    for _ in range(3):
        assert http.request("GET", link).data == full_bytes(file)
    pool = http.connection_from_url(link)
    assert pool.num_connections == 1  # everything went over one kept-alive connection
    assert emulator.file_requests["s/song.mp3"] == 3
    assert ("HEAD", "/dl/s/song.mp3") in [(m, p) for m, p, _ in emulator.requests]


def test_download_link_served_content_type_override(emulator: KieEmulator, http: urllib3.PoolManager) -> None:
    file = SyntheticFile("p/wrong.png", 100, "image/png", served_content_type="application/octet-stream")
    link = resolve(http, emulator, emulator.add_file(file))
    response = http.request("GET", link)
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.data.startswith(b"\x89PNG\r\n\x1a\n")


# --- file faults -------------------------------------------------------------------------------


def test_file_fault_truncate_raises_protocol_error(emulator: KieEmulator, http: urllib3.PoolManager) -> None:
    file = SyntheticFile("v/trunc.mp4", 1_000_000, "video/mp4")
    link = resolve(http, emulator, emulator.add_file(file))
    emulator.inject_file_fault(file.name, FileFault.truncate(300_000))
    with pytest.raises(urllib3.exceptions.ProtocolError):
        http.request("GET", link, enforce_content_length=True)
    assert emulator.bytes_served == 300_000
    assert http.request("GET", link).data == full_bytes(file)  # fault consumed


def test_file_fault_http_500_then_success(emulator: KieEmulator, http: urllib3.PoolManager) -> None:
    file = SyntheticFile("p/e.png", 1000, "image/png")
    link = resolve(http, emulator, emulator.add_file(file))
    emulator.inject_file_fault(file.name, FileFault.http_status(500), times=2)
    assert http.request("GET", link).status == 500
    assert http.request("GET", link).status == 500
    response = http.request("GET", link)
    assert response.status == 200
    assert response.data == full_bytes(file)


def test_file_fault_reset_gives_no_response(emulator: KieEmulator, http: urllib3.PoolManager) -> None:
    file = SyntheticFile("p/r.png", 1000, "image/png")
    link = resolve(http, emulator, emulator.add_file(file))
    emulator.inject_file_fault(file.name, FileFault.reset())
    with pytest.raises(urllib3.exceptions.ProtocolError):
        http.request("GET", link)
    assert http.request("GET", link).status == 200


def test_file_fault_stall_and_wrong_content_type(emulator: KieEmulator, http: urllib3.PoolManager) -> None:
    file = SyntheticFile("p/st.jpg", 200_000, "image/jpeg")
    link = resolve(http, emulator, emulator.add_file(file))
    emulator.inject_file_fault(file.name, FileFault.stall(after_byte=1000, seconds=0.4))
    emulator.inject_file_fault(file.name, FileFault.wrong_content_type("text/plain"))
    began = time.monotonic()
    stalled = http.request("GET", link)
    assert time.monotonic() - began >= 0.35
    assert stalled.data == full_bytes(file)
    wrong = http.request("GET", link)
    assert wrong.headers["Content-Type"] == "text/plain"
    assert http.request("GET", link).headers["Content-Type"] == "image/jpeg"


def test_file_fault_stall_trips_client_read_timeout(emulator: KieEmulator, http: urllib3.PoolManager) -> None:
    file = SyntheticFile("p/st2.png", 100_000, "image/png")
    link = resolve(http, emulator, emulator.add_file(file))
    emulator.inject_file_fault(file.name, FileFault.stall(after_byte=10, seconds=2))
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        http.request("GET", link, timeout=urllib3.Timeout(connect=1, read=0.2))


def test_bandwidth_limit_slows_one_stream(emulator: KieEmulator, http: urllib3.PoolManager) -> None:
    file = SyntheticFile("v/slow.mp4", 2 * BLOCK_SIZE, "video/mp4")
    link = resolve(http, emulator, emulator.add_file(file))
    began = time.monotonic()
    http.request("GET", link)
    unlimited = time.monotonic() - began
    emulator.bandwidth_limit_bps = 4 * BLOCK_SIZE
    began = time.monotonic()
    response = http.request("GET", link)
    limited = time.monotonic() - began
    assert len(response.data) == file.size
    assert 0.4 <= limited <= 1.5
    assert limited > unlimited + 0.3


# --- record-info -------------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(RECORD_INFO_PATHS))
def test_record_info_known_and_unknown_task(
    emulator: KieEmulator, http: urllib3.PoolManager, family: str
) -> None:
    data = {"taskId": f"t-{family}", "successFlag": 1, "response": {"resultUrls": ["x"]}}
    emulator.add_task(family, f"t-{family}", data)
    path = RECORD_INFO_PATHS[family]
    known = http.request("GET", f"{emulator.base_url}{path}?taskId=t-{family}", headers=auth())
    assert known.status == 200
    assert known.json() == {"code": 200, "msg": "success", "data": data}
    unknown = http.request("GET", f"{emulator.base_url}{path}?taskId=nope", headers=auth())
    assert unknown.json() == {"code": 422, "msg": "recordInfo is null", "data": None}


@pytest.mark.parametrize(
    ("family", "path"),
    [
        ("suno_vocal_separation", "/api/v1/vocal-removal/record-info"),
        ("suno_cover", "/api/v1/suno/cover/record-info"),
    ],
)
def test_record_info_serves_suno_separation_and_cover_paths(
    emulator: KieEmulator, http: urllib3.PoolManager, family: str, path: str
) -> None:
    # The documented paths (get-vocal-separation-details, get-cover-suno-details), string successFlag.
    data = {"taskId": "t1", "successFlag": "SUCCESS", "response": {"vocalUrl": "https://h/v.mp3"}}
    emulator.add_task(family, "t1", data)
    answer = http.request("GET", f"{emulator.base_url}{path}?taskId=t1", headers=auth())
    assert answer.json() == {"code": 200, "msg": "success", "data": data}
    assert emulator.record_info_calls["t1"] == 1


def test_record_info_auth_and_injected_codes(emulator: KieEmulator, http: urllib3.PoolManager) -> None:
    emulator.add_task("market", "m1", {"taskId": "m1", "state": "success"})
    url = f"{emulator.base_url}{RECORD_INFO_PATHS['market']}?taskId=m1"
    assert http.request("GET", url, headers=auth("bad")).json()["code"] == 401
    emulator.inject_record_info(455, task_id="m1")
    assert http.request("GET", url, headers=auth()).json()["code"] == 455
    assert http.request("GET", url, headers=auth()).json()["code"] == 200
    assert emulator.record_info_calls["m1"] == 3


def test_add_task_rejects_unknown_family(emulator: KieEmulator) -> None:
    with pytest.raises(ValueError):
        emulator.add_task("dalle", "t", {})


def test_unknown_path_returns_404_envelope(emulator: KieEmulator, http: urllib3.PoolManager) -> None:
    response = http.request("GET", f"{emulator.base_url}/api/v1/nothing", headers=auth())
    assert response.status == 404
    assert response.json()["code"] == 404


# --- signed callbacks --------------------------------------------------------------------------


def test_sign_matches_independent_hmac() -> None:
    headers = sign("k3y", "task-1", timestamp=1790004100)
    expected = base64.b64encode(hmac.new(b"k3y", b"task-1.1790004100", hashlib.sha256).digest()).decode()
    assert headers == {"X-Webhook-Timestamp": "1790004100", "X-Webhook-Signature": expected}
    assert abs(int(sign("k", "t")["X-Webhook-Timestamp"]) - time.time()) < 5


def test_send_callback_posts_signed_json() -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers.items()), body))
            reply = b'{"status":"received"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/callbacks/kie"
        body = {"code": 200, "msg": "success", "data": {"taskId": "abc"}}
        status, reply = send_callback(url, body, "abc", "secret", timestamp=1700000000)
        assert (status, reply) == (200, b'{"status":"received"}')
        status, _ = send_callback(url, body, "abc", None)
    finally:
        server.shutdown()
        server.server_close()
    headers, raw = received[0]
    assert json.loads(raw) == body
    assert headers["X-Webhook-Timestamp"] == "1700000000"
    assert headers["X-Webhook-Signature"] == sign("secret", "abc", 1700000000)["X-Webhook-Signature"]
    assert headers["Content-Type"] == "application/json"
    assert "X-Webhook-Signature" not in received[1][0]


# --- SyntheticFile -----------------------------------------------------------------------------


def test_synthetic_file_random_access_matches_stream() -> None:
    file = SyntheticFile("p/ra.webp", 2 * BLOCK_SIZE + 777, "image/webp", seed=11)
    whole = full_bytes(file)
    assert len(whole) == file.size
    for offset, length in [(0, 10), (5, 1000), (BLOCK_SIZE - 3, 10), (2 * BLOCK_SIZE + 700, 500), (0, 0)]:
        assert file.read(offset, length) == whole[offset : offset + length]
    assert b"".join(file.iter_bytes(BLOCK_SIZE - 5, BLOCK_SIZE + 5, chunk=3)) == whole[BLOCK_SIZE - 5 :][:10]
    assert file.sha256_hex() == hashlib.sha256(whole).hexdigest()
    assert SyntheticFile("p/ra.webp", file.size, "image/webp", seed=11).read(0, 4096) == whole[:4096]
    assert SyntheticFile("p/ra.webp", file.size, "image/webp", seed=12).read(0, 4096) != whole[:4096]
    assert file.read(BLOCK_SIZE, 4096) != file.read(0, 4096)  # blocks differ


@pytest.mark.parametrize(
    ("content_type", "magic", "offset"),
    [
        ("image/png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 0),
        ("image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF", 0),
        ("video/mp4", b"\x00\x00\x00\x18ftypmp42", 0),
        ("audio/mpeg", b"ID3\x04\x00", 0),
        ("audio/wav", b"WAVE", 8),
        ("image/webp", b"WEBP", 8),
    ],
)
def test_synthetic_file_magic_prefix(content_type: str, magic: bytes, offset: int) -> None:
    file = SyntheticFile("f", 10_000, content_type)
    head = file.read(0, 64)
    assert head[offset : offset + len(magic)] == magic
    if offset:
        assert head.startswith(b"RIFF")
        assert int.from_bytes(head[4:8], "little") == file.size - 8


def test_synthetic_file_smaller_than_prefix_is_truncated() -> None:
    file = SyntheticFile("tiny.png", 5, "image/png")
    assert full_bytes(file) == b"\x89PNG\r"
    assert SyntheticFile("empty.mp4", 0, "video/mp4").sha256_hex() == hashlib.sha256(b"").hexdigest()


# --- lifecycle ---------------------------------------------------------------------------------


def test_emulator_stop_closes_connections_and_threads(clock: FakeClock) -> None:
    before = set(threading.enumerate())
    emu = KieEmulator(api_key=API_KEY, clock=clock).start()
    http = urllib3.PoolManager(retries=False)
    link = resolve(http, emu, emu.add_file(SyntheticFile("p/x.png", 10, "image/png")))
    assert http.request("GET", link).status == 200  # leaves a kept-alive connection open
    emu.stop()
    assert set(threading.enumerate()) <= before
    with pytest.raises(urllib3.exceptions.HTTPError):
        urllib3.PoolManager(retries=False).request("GET", link, timeout=1)
    http.clear()


def test_emulator_admin_api_registers_files_and_faults(
    emulator: KieEmulator, http: urllib3.PoolManager
) -> None:
    admin = f"{emulator.base_url}/_emulator"
    spec = {"name": "v/a.mp4", "size": 4096, "contentType": "video/mp4"}
    assert http.request("POST", f"{admin}/files", json=spec).status == 401
    created = http.request("POST", f"{admin}/files", json=spec, headers=auth()).json()
    url = created["data"]["url"]
    assert url == f"{emulator.base_url}/files/v/a.mp4"
    fault = {"name": "v/a.mp4", "kind": "http_status", "status": 503}
    assert http.request("POST", f"{admin}/faults/file", json=fault, headers=auth()).status == 200
    link = resolve(http, emulator, url)
    assert http.request("GET", link).status == 503
    assert http.request("GET", link).data == full_bytes(emulator.file("v/a.mp4"))
    stats = http.request("GET", f"{admin}/stats", headers=auth()).json()["data"]
    assert stats["fileRequests"] == {"v/a.mp4": 2}
    changed = {"name": "v/a.mp4", "kind": "new_version"}
    assert http.request("POST", f"{admin}/faults/file", json=changed, headers=auth()).status == 200
    http.request("GET", link)
    assert len(emulator.versions("v/a.mp4")) == 2
    settings = {"validators": False, "honourIfRange": False}
    assert http.request("POST", f"{admin}/settings", json=settings, headers=auth()).status == 200
    assert (emulator.validators, emulator.honour_if_range) == (False, False)


def test_emulator_cli_serves_and_exits_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.kie_emulator", "--port", "0", "--api-key", "cli-key"],
        stdout=subprocess.PIPE,
        cwd=REPO_ROOT,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        response = urllib3.request(
            "POST",
            f"{base_url}/api/v1/common/download-url",
            json={"url": "https://example.com/x"},
            headers={"Authorization": "Bearer cli-key"},
        )
        assert response.json()["code"] == 422
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
