"""The container's clients: what they put on the wire that the copy relies on."""

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from kie2s3.adapters import clients
from kie2s3.adapters.s3_store import S3Store


class _EmptyBody:
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield b""


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Requests the S3 client would send (to a plain-http endpoint), answered 200 without a network."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    clients.forget()
    requests: list[Any] = []

    def answer(request: Any, **_: Any) -> AWSResponse:
        requests.append(request)
        return AWSResponse(request.url, 200, {"ETag": '"e"'}, _EmptyBody())

    client = clients.s3_client()
    client.meta.events.register("before-send.s3", answer)
    yield requests
    clients.forget()


def test_s3_parts_are_checksummed_not_payload_signed(sent: list[Any]) -> None:
    upload = S3Store(clients.s3_client(), "bucket").multipart_upload(
        "k", content_type="video/mp4", metadata={}
    )
    upload.upload_id = "up-1"  # as if the upload existed: only the UploadPart request is looked at
    upload.upload_part(1, memoryview(b"part bytes"))
    (request,) = sent
    assert request.headers["x-amz-content-sha256"] == b"UNSIGNED-PAYLOAD"
    assert request.headers["x-amz-checksum-crc32"] == b"2J6rOQ=="
