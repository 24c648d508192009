"""HttpSource's reads: bytes land straight in the caller's buffer, exactly, and a connection whose
body was read to its end serves the next range.

Against the kie.ai emulator's file server (HTTP/1.1, keep-alive) and scripted loopback origins
that cut bodies short; no stack.
"""

import hashlib
from collections.abc import Iterator

import pytest
import urllib3
from devstack.kie_emulator import KieEmulator, SyntheticFile
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.servers import Start, answer, scripted

from kie2s3.adapters.http_source import HttpSource
from kie2s3.errors import RetryableError
from kie2s3.models import SourceVersion

__all__ = ["scripted"]  # fixtures used here

KIB = 1024
MAX_BYTES = 1024**3


@pytest.fixture(scope="module")
def emulator() -> Iterator[KieEmulator]:
    with KieEmulator(api_key="source-reads") as kie:
        yield kie


def _served(emulator: KieEmulator, size: int, seed: int) -> tuple[str, bytes]:
    file = SyntheticFile(f"reads-{size}-{seed}.mp4", size, "video/mp4", seed=seed)
    emulator.add_file(file)
    return emulator.download_link(file.name), b"".join(file.iter_bytes(chunk=64 * KIB))


def _copy(source: HttpSource, link: str, part: int) -> tuple[bytes, SourceVersion | None]:
    """The file as the transfer reads it: the opening range into one buffer, then, while the
    download is still open, the rest as ranges."""
    with source.open(link, max_bytes=MAX_BYTES, first_part=part) as stream:
        first = bytearray(part)
        out = bytearray(first[: stream.fill(memoryview(first))])
        version, total = stream.version, stream.total_size
        while total is not None and version is not None and len(out) < total:
            buffer = bytearray(min(part, total - len(out)))
            source.fetch_range(link, len(out), memoryview(buffer), version)
            out += buffer
    return bytes(out), version


def test_ranges_read_to_their_end_share_one_connection(
    emulator: KieEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each range used to close its connection: a new TCP (and, on https, TLS) handshake per part.
    sockets: list[object] = []
    new_conn = urllib3.connection.HTTPConnection._new_conn

    def counted(self: urllib3.connection.HTTPConnection) -> object:
        sockets.append(made := new_conn(self))
        return made

    monkeypatch.setattr(urllib3.connection.HTTPConnection, "_new_conn", counted)
    link, data = _served(emulator, 5 * 64 * KIB + 17, seed=1)
    copied, version = _copy(HttpSource(urllib3.PoolManager(retries=False)), link, 64 * KIB)
    assert version is not None  # the emulator pins ranges: six requests were made
    assert hashlib.sha256(copied).hexdigest() == hashlib.sha256(data).hexdigest()
    assert len(sockets) == 1


@settings(max_examples=15, deadline=None, database=None, derandomize=True)
@given(size=st.integers(0, 300 * KIB), part=st.integers(KIB, 128 * KIB), seed=st.integers(0, 3))
def test_every_byte_lands_where_it_belongs_whatever_the_sizes(
    emulator: KieEmulator, size: int, part: int, seed: int
) -> None:
    link, data = _served(emulator, size, seed)
    copied, _version = _copy(HttpSource(urllib3.PoolManager(retries=False)), link, part)
    assert copied == data


def test_a_body_cut_short_is_retryable(scripted: Start) -> None:
    # Content-Length promises 1,000 bytes; 400 come, then the connection closes.
    origin = scripted(answer("200 OK", {"Content-Length": "1000"}, bytes(400)))
    source = HttpSource(urllib3.PoolManager(retries=False))
    with (
        pytest.raises(RetryableError, match="400 of 1000 bytes"),
        source.open(origin.url(), max_bytes=MAX_BYTES, first_part=None) as stream,
    ):
        stream.fill(memoryview(bytearray(2000)))


def test_a_range_cut_short_is_retryable(scripted: Start) -> None:
    version = SourceVersion(5000, '"v1"', '"v1"', None)
    headers = {"Content-Range": "bytes 1000-1999/5000", "Content-Length": "1000", "ETag": '"v1"'}
    origin = scripted(answer("206 Partial Content", headers, bytes(999)))
    source = HttpSource(urllib3.PoolManager(retries=False))
    with pytest.raises(RetryableError, match="999 of 1000 bytes"):
        source.fetch_range(origin.url(), 1000, memoryview(bytearray(1000)), version)
