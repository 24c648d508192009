"""Empty sources and sources that change mid-download: archived whole and from one version.

The HttpSource tests run against scripted loopback origins (fast, no stack); the others go through
`app.lambda_handler` on the local stack, with the kie.ai emulator's file server.
"""

import dataclasses
import hashlib
import itertools
from typing import Any

import pytest
import urllib3
from devstack.callbacks import market_body
from devstack.stack import Stack
from tests import servers
from tests.integration.conftest import (
    incomplete_uploads,
    objects_under,
    post_callback,
    serve,
    task_document,
)
from tests.servers import answer, scripted

from kie2s3.adapters.http_source import HttpSource, SourceChangedError, SourceStream, SourceVersion
from kie2s3.errors import PermanentError, RetryableError
from kie2s3.handlers import http as http_handler
from kie2s3.handlers.wiring import get_services
from kie2s3.logic.services import RetryPolicy

__all__ = ["scripted"]  # fixtures used here

MIB = 1024**2
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
PART = 1000
DATA = bytes(range(256)) * 10  # 2,560 bytes: three parts of PART
MONDAY = "Mon, 02 Nov 2026 10:00:00 GMT"
TUESDAY = "Tue, 03 Nov 2026 10:00:00 GMT"
PINNED = {"ETag": '"v1"', "Last-Modified": MONDAY}
FAST = RetryPolicy(attempts=2, base_seconds=0.01, cap_seconds=0.05)


# --- HttpSource against scripted origins ---------------------------------------------------------


def _raw(status: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"HTTP/1.1 {status}\r\n{head}\r\n".encode() + body


def _ranges(data: bytes, validators: dict[str, str], *, whole: bool = False) -> servers.Script:
    """An origin serving `data` with these validators: 206 for a Range (unless `whole`), else 200."""

    def script(handler: Any) -> list[bytes]:
        asked = handler.headers.get("Range")
        if asked is None or whole:
            return [_raw("200 OK", {"Content-Length": str(len(data)), **validators}, data)]
        first, last = (int(n) for n in asked.removeprefix("bytes=").split("-"))
        last = min(last, len(data) - 1)
        body = data[first : last + 1]
        headers = {"Content-Range": f"bytes {first}-{last}/{len(data)}", "Content-Length": str(len(body))}
        return [_raw("206 Partial Content", {**headers, **validators}, body)]

    return script


def _then(opening: servers.Script, later: servers.Script) -> servers.Script:
    """The first request answered by `opening`, every later one by `later`."""
    count = itertools.count()
    return lambda handler: opening(handler) if next(count) == 0 else later(handler)


def _source() -> HttpSource:
    return HttpSource(urllib3.PoolManager(retries=False))


def _read_all(stream: SourceStream) -> bytes:
    into = bytearray(64 * 1024)
    got = stream.fill(memoryview(into))
    return bytes(into[:got])


def _header(request: tuple[str, str, dict[str, str]], name: str) -> str | None:
    return {k.lower(): v for k, v in request[2].items()}.get(name.lower())


@pytest.mark.parametrize(
    "script",
    [
        answer(
            "416 Range Not Satisfiable",
            {"Content-Range": "bytes */0", "Content-Type": "application/xml", "Content-Length": "7"},
            b"<Error/>",
        ),
        answer("206 Partial Content", {"Content-Range": "bytes */0", "Content-Length": "0"}),
        answer("206 Partial Content", {"Content-Length": "0"}),
        answer("200 OK", {"Content-Length": "0", "Content-Type": "image/png"}),
    ],
    ids=["416-bytes-*/0", "206-bytes-*/0", "206-empty", "200-empty"],
)
def test_http_source_empty_source_opens_as_an_empty_stream(
    scripted: servers.Start, script: servers.Script
) -> None:
    server = scripted(script)
    with _source().open(server.url("/empty.png"), max_bytes=MIB, first_part=PART) as stream:
        assert stream.total_size == 0
        assert not stream.ranged
        assert _read_all(stream) == b""  # never the body of a 416 (an error page)
        assert stream.content_type != "application/xml"
    assert len(server.requests) == 1


def test_http_source_416_for_a_file_that_has_bytes_stays_permanent(scripted: servers.Start) -> None:
    server = scripted(
        answer("416 Range Not Satisfiable", {"Content-Range": "bytes */5", "Content-Length": "0"})
    )
    with (
        pytest.raises(PermanentError, match="416"),
        _source().open(server.url("/x"), max_bytes=MIB, first_part=PART),
    ):
        pass


def test_http_source_later_ranges_carry_if_range_with_the_strong_etag(scripted: servers.Start) -> None:
    server = scripted(_ranges(DATA, PINNED))
    source = _source()
    part = bytearray(PART)
    with source.open(server.url("/f"), max_bytes=MIB, first_part=PART) as stream:
        assert stream.version == SourceVersion(len(DATA), '"v1"', '"v1"', MONDAY)
        source.fetch_range(server.url("/f"), PART, memoryview(part), stream.version)
    assert bytes(part) == DATA[PART : 2 * PART]
    assert _header(server.requests[0], "If-Range") is None
    assert _header(server.requests[1], "If-Range") == '"v1"'
    assert _header(server.requests[1], "Range") == f"bytes={PART}-{2 * PART - 1}"


def test_http_source_weak_etag_pins_on_last_modified(scripted: servers.Start) -> None:
    server = scripted(_ranges(DATA, {"ETag": 'W/"v1"', "Last-Modified": MONDAY}))
    source = _source()
    with source.open(server.url("/f"), max_bytes=MIB, first_part=PART) as stream:
        assert stream.version is not None
        source.fetch_range(server.url("/f"), PART, memoryview(bytearray(PART)), stream.version)
    assert _header(server.requests[1], "If-Range") == MONDAY  # a weak tag cannot be used (RFC 9110)


@pytest.mark.parametrize("validators", [{}, {"ETag": 'W/"v1"'}], ids=["none", "weak-etag-only"])
def test_http_source_without_a_usable_validator_reads_the_file_in_one_stream(
    scripted: servers.Start, validators: dict[str, str]
) -> None:
    server = scripted(_ranges(DATA, validators))
    with _source().open(server.url("/f"), max_bytes=MIB, first_part=PART) as stream:
        assert not stream.ranged
        assert stream.total_size == len(DATA)
        assert _read_all(stream) == DATA
    # The partial opening answer is dropped unread; the file comes from one plain GET.
    assert [_header(r, "Range") for r in server.requests] == [f"bytes=0-{PART - 1}", None]


def test_http_source_plain_open_is_one_get_without_range(scripted: servers.Start) -> None:
    server = scripted(_ranges(DATA, PINNED))
    with _source().open(server.url("/f"), max_bytes=MIB, first_part=None) as stream:
        assert not stream.ranged  # validators or not: one stream, never ranges
        assert stream.total_size == len(DATA)
        assert _read_all(stream) == DATA
    assert [(_header(r, "Range"), _header(r, "If-Range")) for r in server.requests] == [(None, None)]


def test_http_source_plain_open_answered_with_a_range_is_refused(scripted: servers.Start) -> None:
    server = scripted(
        answer(
            "206 Partial Content",
            {"Content-Range": "bytes 0-9/20", "Content-Length": "10", **PINNED},
            bytes(10),
        )
    )
    with (
        pytest.raises(RetryableError, match="206"),
        _source().open(server.url("/f"), max_bytes=MIB, first_part=None),
    ):
        pass


def test_http_source_without_validators_keeps_an_opening_range_that_holds_the_whole_file(
    scripted: servers.Start,
) -> None:
    server = scripted(_ranges(DATA[:300], {}))
    with _source().open(server.url("/f"), max_bytes=MIB, first_part=PART) as stream:
        assert _read_all(stream) == DATA[:300]
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "later",
    [
        _ranges(DATA, PINNED, whole=True),
        _ranges(DATA + b"more", PINNED),
        _ranges(DATA, {**PINNED, "ETag": '"v2"'}),
        _ranges(DATA, {**PINNED, "Last-Modified": TUESDAY}),
        _ranges(DATA, {"Last-Modified": MONDAY}),
        answer("416 Range Not Satisfiable", {"Content-Range": "bytes */10", "Content-Length": "0"}),
    ],
    ids=["200-instead-of-206", "other-total", "other-etag", "other-last-modified", "etag-gone", "416"],
)
def test_http_source_range_from_another_version_is_refused(
    scripted: servers.Start, later: servers.Script
) -> None:
    server = scripted(_then(_ranges(DATA, PINNED), later))
    source = _source()
    with source.open(server.url("/f"), max_bytes=MIB, first_part=PART) as stream:
        assert stream.version is not None
        with pytest.raises(SourceChangedError, match="changed"):
            source.fetch_range(server.url("/f"), PART, memoryview(bytearray(PART)), stream.version)
    assert issubclass(SourceChangedError, RetryableError)  # the whole transfer is tried again


# --- through lambda_handler on the local stack -------------------------------------------------


@pytest.fixture
def quick_inline(inline_mode: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """Inline copies whose transfer retries (2 attempts) wait milliseconds, not seconds."""
    fast = dataclasses.replace(get_services(), retry=FAST)
    monkeypatch.setattr(http_handler, "get_services", lambda: fast)
    return inline_mode


def _file_gets(stack: Stack, name: str) -> list[tuple[str, str, dict[str, str]]]:
    return [r for r in stack.emulator.requests if r[:2] == ("GET", f"/dl/{name}")]


def _etag(stack: Stack, name: str) -> str:
    """The ETag the file has now (a HEAD: neither counted nor consuming faults)."""
    head = urllib3.request("HEAD", stack.emulator.download_link(name))
    return str(head.headers["ETag"])


def _stored(stack: Stack, key: str) -> bytes:
    return bytes(stack.client("s3").get_object(Bucket=stack.bucket, Key=key)["Body"].read())


def _tags(stack: Stack, key: str) -> dict[str, str]:
    tagging = stack.client("s3").get_object_tagging(Bucket=stack.bucket, Key=key)
    return {t["Key"]: t["Value"] for t in tagging["TagSet"]}


def test_copy_zero_byte_file_is_archived_as_an_empty_object(inline_mode: Stack, task_id: str) -> None:
    ((url, source),) = serve(inline_mode, task_id, [(".png", 0)]).items()
    assert post_callback(market_body(task_id, [url]), task_id)[0] == 200
    doc = task_document(task_id)
    assert doc["state"] == "copied", doc
    (entry,) = doc["files"]
    assert (entry["state"], entry["bytes"], entry["sha256"]) == ("copied", 0, EMPTY_SHA256)
    key = entry["key"]
    assert objects_under(inline_mode, key) == {key: 0}
    assert _stored(inline_mode, key) == b""
    assert _tags(inline_mode, key)["sha256"] == EMPTY_SHA256
    assert source.sha256_hex() == EMPTY_SHA256


def test_copy_source_changing_between_ranges_stores_one_version_exactly(
    quick_inline: Stack, task_id: str
) -> None:
    from devstack.kie_emulator import FileFault

    stack = quick_inline
    size = 20 * MIB  # three ranges
    ((url, source),) = serve(stack, task_id, [(".mp4", size)]).items()
    first_etag = _etag(stack, source.name)
    # The file is overwritten right after the opening request: every later range is another version.
    stack.emulator.inject_file_fault(source.name, FileFault.new_version())
    assert post_callback(market_body(task_id, [url]), task_id)[0] == 200

    versions = stack.emulator.versions(source.name)
    assert len(versions) == 2
    doc = task_document(task_id)
    (entry,) = doc["files"]
    assert (entry["state"], entry["sourceUnstable"]) == ("copied", True), entry
    stored = hashlib.sha256(_stored(stack, entry["key"])).hexdigest()
    assert stored == entry["sha256"] == _tags(stack, entry["key"])["sha256"] == versions[1].sha256_hex()
    assert incomplete_uploads(stack, task_id) == []

    # Every range after the opening request was pinned with If-Range to the version it opened on;
    # once one answered another version, the file came from one plain GET of the version it is now.
    *ranged, plain = _file_gets(stack, source.name)
    assert (_header(plain, "Range"), _header(plain, "If-Range")) == (None, None)
    assert (_header(ranged[0], "Range") or "").startswith("bytes=0-")
    assert _header(ranged[0], "If-Range") is None
    assert len(ranged) > 1, "no ranged GET was made"
    assert {_header(r, "If-Range") for r in ranged[1:]} == {first_etag}


def test_copy_source_changing_on_every_request_is_archived_from_one_plain_get(
    quick_inline: Stack, task_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devstack.kie_emulator import FileFault

    stack = quick_inline
    # An origin that ignores If-Range: the ETag of each range is what gives the change away.
    monkeypatch.setattr(stack.emulator, "honour_if_range", False)
    size = 20 * MIB  # three ranges
    ((url, source),) = serve(stack, task_id, [(".mp4", size)]).items()
    # Every GET is answered from the file as it is, then the file is replaced: no two requests agree.
    stack.emulator.inject_file_fault(source.name, FileFault.new_version(), times=1000)
    assert post_callback(market_body(task_id, [url]), task_id)[0] == 200

    doc = task_document(task_id)
    (entry,) = doc["files"]
    assert (doc["state"], entry["state"]) == ("copied", "copied"), doc
    assert entry["sourceUnstable"] is True
    # The last GET is one plain GET (no Range, no If-Range): what it served is what is archived.
    gets = _file_gets(stack, source.name)
    assert (_header(gets[-1], "Range"), _header(gets[-1], "If-Range")) == (None, None)
    assert all(_header(r, "Range") for r in gets[:-1])  # before it, only the ranged download
    served = stack.emulator.versions(source.name)[len(gets) - 1]  # each GET made one new version
    stored = _stored(stack, entry["key"])
    assert hashlib.sha256(stored).hexdigest() == served.sha256_hex() == entry["sha256"]
    assert (len(stored), entry["bytes"]) == (size, size)
    assert _tags(stack, entry["key"])["sha256"] == entry["sha256"]
    assert incomplete_uploads(stack, task_id) == []


def test_copy_stable_source_is_not_marked_unstable(inline_mode: Stack, task_id: str) -> None:
    ((url, source),) = serve(inline_mode, task_id, [(".mp4", 12 * MIB)]).items()
    assert post_callback(market_body(task_id, [url]), task_id)[0] == 200
    (entry,) = task_document(task_id)["files"]
    assert (entry["state"], entry["sourceUnstable"], entry["sha256"]) == (
        "copied",
        False,
        source.sha256_hex(),
    )
    assert all(_header(r, "Range") for r in _file_gets(inline_mode, source.name))  # ranges only


@pytest.fixture
def no_validators(quick_inline: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The emulator's links send neither ETag nor Last-Modified."""
    monkeypatch.setattr(quick_inline.emulator, "validators", False)
    return quick_inline


def test_copy_source_without_validators_is_read_in_one_stream(no_validators: Stack, task_id: str) -> None:
    stack = no_validators
    ((url, source),) = serve(stack, task_id, [(".mp4", 12 * MIB)]).items()
    assert post_callback(market_body(task_id, [url]), task_id)[0] == 200
    (entry,) = task_document(task_id)["files"]
    assert entry["state"] == "copied", entry
    assert entry["sha256"] == source.sha256_hex()
    assert hashlib.sha256(_stored(stack, entry["key"])).hexdigest() == source.sha256_hex()
    # The opening range, dropped unread, then the whole file on one plain GET: no parallel ranges.
    gets = _file_gets(stack, source.name)
    assert [(_header(r, "Range") or "")[:8] for r in gets] == ["bytes=0-", ""]
    assert stack.emulator.file_requests[source.name] == 2
