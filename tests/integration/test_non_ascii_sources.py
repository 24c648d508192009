"""Sources whose URL path holds spaces and non-ASCII (kie.ai's stem files do): copied once, like any other."""

from urllib.parse import unquote

from devstack.callbacks import market_body, serve_result_files
from devstack.stack import Stack
from tests.integration.conftest import archived_files, incomplete_uploads, post_callback, task_document


def test_non_ascii_source_path_is_copied_once_with_ascii_metadata(queue_mode: Stack, task_id: str) -> None:
    url = f"https://tempfile.aiquickdraw.com/p/{task_id}/日本語の画像 1.png"
    ((_, source),) = serve_result_files(queue_mode.emulator, [url], size=4096).items()
    assert post_callback(market_body(task_id, [url]), task_id)[0] == 200
    queue_mode.poller().drain()

    doc = task_document(task_id)
    assert (doc["state"], doc["files"][0]["sha256"]) == ("copied", source.sha256_hex()), doc
    key = f"kie/{task_id}/00.png"
    assert archived_files(queue_mode, task_id) == {key: 4096}
    # One download: the copy was not refused before sending and then retried on every delivery.
    assert queue_mode.emulator.file_requests[source.name] == 1
    assert incomplete_uploads(queue_mode, task_id) == []
    metadata = queue_mode.client("s3").head_object(Bucket=queue_mode.bucket, Key=key)["Metadata"]
    assert all(value.isascii() for value in metadata.values()), metadata
    # S3 user metadata is US-ASCII: the source is there percent-encoded, nothing lost.
    assert unquote(metadata["source"]) == url
    assert "%E6%97%A5%E6%9C%AC%E8%AA%9E" in metadata["source"]  # 日本語
