"""Exactly once, never lost: duplicates, kills, S3 faults and a burst, in queue mode."""

import hashlib
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from devstack.callbacks import market_body
from devstack.lambda_runtime import task_status_event
from devstack.stack import Stack
from tests.integration.conftest import (
    archived_files,
    incomplete_uploads,
    post_callback,
    ranges_for,
    send,
    serve,
    start_worker,
    task_document,
    without_links,
    worker_report,
)

from kie2s3.models import CopyJob

MIB = 1024**2


def _assert_copied_once_after(stack: Stack, task_id: str, source: Any, failed_requests: int) -> None:
    """Drained: the file is copied with its exact digest, after `failed_requests` broken GETs and one
    clean pass over its ranges, and no multipart upload is left behind."""
    stack.poller().drain()
    doc = task_document(task_id)
    assert doc["state"] == "copied"
    assert doc["files"][0]["sha256"] == source.sha256_hex()
    assert stack.emulator.file_requests[source.name] == failed_requests + ranges_for(source.size)
    assert incomplete_uploads(stack, task_id) == []


def _called_back(stack: Stack, task_id: str, size: int) -> tuple[str, Any]:
    """One served .mp4 of `size` bytes whose signed callback has queued its copy: (url, source)."""
    ((url, source),) = serve(stack, task_id, [(".mp4", size)]).items()
    post_callback(market_body(task_id, [url]), task_id)
    return url, source


def _market_job(task_id: str, url: str, key: str, index: int = 0) -> CopyJob:
    """The copy job the receiver sends for file `index` of a market task."""
    return CopyJob(task_id=task_id, index=index, source=url, kind="file", family="market", key=key)


def _enqueue(stack: Stack, job: CopyJob, times: int) -> None:
    """What SQS's at-least-once delivery can do: the same job more than once."""
    sqs = stack.client("sqs")
    for _ in range(times):
        sqs.send_message(QueueUrl=stack.env["COPY_QUEUE_URL"], MessageBody=job.model_dump_json())


def test_same_callback_five_times_concurrently_stores_and_downloads_once(
    queue_mode: Stack, task_id: str
) -> None:
    served = serve(queue_mode, task_id, [(".png", 256 * 1024), (".mp4", 12 * MIB)])
    body = market_body(task_id, list(served))
    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(pool.map(lambda _: post_callback(body, task_id), range(5)))
    assert [status for status, _ in answers] == [200] * 5
    # Duplicates the receiver could not see (SQS redelivery): each job twice more, three workers at once.
    doc = task_document(task_id)
    for entry, url in zip(doc["files"], served, strict=True):
        _enqueue(queue_mode, _market_job(task_id, url, entry["key"], entry["index"]), times=2)
    queue_mode.emulator.bandwidth_limit_bps = 19 * MIB  # slow enough for the workers to overlap
    try:
        workers = [start_worker(queue_mode) for _ in range(3)]
        reports = [worker_report(w) for w in workers]
        queue_mode.poller().drain()  # anything redelivered after the workers stopped
    finally:
        queue_mode.emulator.bandwidth_limit_bps = None
    print(f"\nworkers handled {[r['messages'] for r in reports]} message(s)")
    doc = task_document(task_id)
    assert doc["state"] == "copied"
    assert archived_files(queue_mode, task_id) == {
        f"kie/{task_id}/00.png": 256 * 1024,
        f"kie/{task_id}/01.mp4": 12 * MIB,
    }
    for url, source in served.items():
        assert queue_mode.emulator.download_url_calls[url] == 1
        # One download: the GETs of one pass over the file's ranges, no more.
        assert queue_mode.emulator.file_requests[source.name] == ranges_for(source.size)
    assert incomplete_uploads(queue_mode, task_id) == []


def test_file_server_500_then_copied_once(queue_mode: Stack, task_id: str) -> None:
    from devstack.kie_emulator import FileFault

    served = serve(queue_mode, task_id, [(".mp4", 9 * MIB)])
    ((url, source),) = served.items()
    queue_mode.emulator.inject_file_fault(source.name, FileFault.http_status(500), times=2)
    post_callback(market_body(task_id, [url]), task_id)
    _assert_copied_once_after(queue_mode, task_id, source, failed_requests=2)


@contextmanager
def _failing(client: Any, failures: dict[str, int]) -> Iterator[dict[str, int]]:
    """The client's named operations fail (InternalError) the given number of times, then work."""
    from botocore.exceptions import ClientError

    service = client.meta.service_model.service_name

    def fail(params: dict[str, Any], model: Any, **_: Any) -> None:
        if failures.get(model.name, 0) > 0:
            failures[model.name] -= 1
            raise ClientError({"Error": {"Code": "InternalError", "Message": "injected"}}, model.name)

    client.meta.events.register(f"before-parameter-build.{service}.*", fail)
    try:
        yield failures
    finally:
        client.meta.events.unregister(f"before-parameter-build.{service}.*", fail)


def test_s3_upload_part_failure_is_aborted_and_retried(queue_mode: Stack, task_id: str) -> None:
    from kie2s3.adapters import clients

    served = serve(queue_mode, task_id, [(".mp4", 20 * MIB)])
    ((url, source),) = served.items()
    with _failing(clients.s3_client(), {"UploadPart": 1, "CompleteMultipartUpload": 1}) as failures:
        post_callback(market_body(task_id, [url]), task_id)
        queue_mode.poller().drain()
    assert failures == {"UploadPart": 0, "CompleteMultipartUpload": 0}
    doc = task_document(task_id)
    assert doc["state"] == "copied"
    body = (
        queue_mode.client("s3")
        .get_object(Bucket=queue_mode.bucket, Key=doc["files"][0]["key"])["Body"]
        .read()
    )
    assert hashlib.sha256(body).hexdigest() == source.sha256_hex()
    assert incomplete_uploads(queue_mode, task_id) == []


def _assert_recorded_after_one_download(stack: Stack, task_id: str, url: str, source: Any) -> None:
    """The file is `copied`, its tag and ledger hold the source's SHA-256, and it was fetched once."""
    (entry,) = task_document(task_id)["files"]
    assert entry["state"] == "copied"
    tags = stack.client("s3").get_object_tagging(Bucket=stack.bucket, Key=entry["key"])["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags}.get("sha256") == entry["sha256"] == source.sha256_hex()
    assert stack.emulator.download_url_calls[url] == 1
    assert stack.emulator.file_requests[source.name] == ranges_for(source.size)


def test_tag_write_failure_keeps_the_file_copying_until_a_redelivery_tags_it(
    queue_mode: Stack, task_id: str
) -> None:
    from kie2s3.adapters import clients

    url, source = _called_back(queue_mode, task_id, 12 * MIB)
    poller = queue_mode.poller()
    with _failing(clients.s3_client(), {"PutObjectTagging": 1}) as failures:
        assert poller.poll_once() == 1
    assert failures == {"PutObjectTagging": 0}
    (entry,) = task_document(task_id)["files"]
    # Completed but untagged is not yet `copied`: the ledger's `copied` waits for the tag.
    assert entry["state"] == "copying"
    assert archived_files(queue_mode, task_id) == {f"kie/{task_id}/00.mp4": 12 * MIB}
    poller.drain()  # the redelivery is answered from the idempotency record: tag and ledger, no download
    _assert_recorded_after_one_download(queue_mode, task_id, url, source)


def test_idempotency_record_failure_after_the_copy_still_records_it_once(
    queue_mode: Stack, task_id: str
) -> None:
    from kie2s3.adapters import clients

    url, source = _called_back(queue_mode, task_id, 12 * MIB)
    poller = queue_mode.poller()
    # The guard's client writes only the idempotency records (the ledger has a client of its own):
    # its one UpdateItem is the record's success, written beside the ledger's `copied`.
    with _failing(clients.dynamodb_client(), {"UpdateItem": 1}) as failures:
        poller.drain()
    assert failures == {"UpdateItem": 0}
    assert poller.invoked == 1  # the job succeeded at once: the file is archived and recorded
    _assert_recorded_after_one_download(queue_mode, task_id, url, source)
    # A later delivery stops at the ledger's `copied`, though the record still says in progress.
    doc = task_document(task_id)
    (entry,) = doc["files"]
    _enqueue(queue_mode, _market_job(task_id, url, entry["key"]), times=1)
    poller.drain()
    assert poller.invoked == 2  # that delivery succeeded at once too: no retry behind the lock
    later = task_document(task_id)
    assert {**later, "files": without_links(later["files"])} == {**doc, "files": without_links(doc["files"])}
    _assert_recorded_after_one_download(queue_mode, task_id, url, source)


def test_job_for_a_file_the_ledger_does_not_know_records_nothing(queue_mode: Stack, task_id: str) -> None:
    # The copy reads no ledger item before it starts (a single-part file costs 6 round trips): a
    # job for a file the ledger does not have (never had, or taken down since) is copied, then
    # `copied` is refused. Its object stays (no function may delete archived objects: `make
    # takedown` removes it), but nothing is recorded.
    ((url, source),) = serve(queue_mode, task_id, [(".mp4", 9 * MIB)]).items()
    dynamodb = queue_mode.client("dynamodb")
    table = queue_mode.env["IDEMPOTENCY_TABLE"]
    records_before = dynamodb.scan(TableName=table, Select="COUNT")["Count"]
    # No callback: the ledger has neither the task nor the file.
    _enqueue(queue_mode, _market_job(task_id, url, f"kie/{task_id}/00.mp4"), times=1)
    poller = queue_mode.poller()
    poller.drain()
    assert poller.invoked == 1  # dropped at once, not retried
    assert queue_mode.emulator.download_url_calls[url] == 1
    assert queue_mode.emulator.file_requests[source.name] == ranges_for(source.size)
    assert archived_files(queue_mode, task_id) == {f"kie/{task_id}/00.mp4": 9 * MIB}
    assert incomplete_uploads(queue_mode, task_id) == []
    assert send(task_status_event(task_id))[0] == 404  # nothing recorded
    # Nor is the idempotency record of its copy kept: a later job of that file would copy it anew.
    assert dynamodb.scan(TableName=table, Select="COUNT")["Count"] == records_before


def test_invocation_killed_mid_copy_is_completed_once_by_the_next_delivery(
    queue_mode: Stack, task_id: str
) -> None:
    _url, source = _called_back(queue_mode, task_id, 32 * MIB)
    served_before = queue_mode.emulator.bytes_served
    queue_mode.emulator.bandwidth_limit_bps = 8 * MIB  # ~4 s copy: time to kill it midway
    try:
        # A 3 s Lambda timeout: the in-progress lock of a killed copy expires 3 s after it started.
        # The message the worker received stays hidden for 4 s (the queue's visibility timeout, which
        # outlasts the function's timeout as the template's does), then SQS delivers it again.
        worker = start_worker(
            queue_mode, "--timeout-seconds", "3", "--visibility-timeout", "4", "--max-messages", "1"
        )
        deadline = time.monotonic() + 30
        while queue_mode.emulator.bytes_served - served_before < 12 * MIB and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        queue_mode.emulator.bandwidth_limit_bps = None
    assert archived_files(queue_mode, task_id) == {}, "a killed copy must never leave a visible object"
    assert task_document(task_id)["files"][0]["state"] == "copying"
    # The drain waits for the killed delivery's message to become visible again, past the lock.
    queue_mode.poller().drain()
    doc = task_document(task_id)
    assert doc["state"] == "copied"
    assert archived_files(queue_mode, task_id) == {f"kie/{task_id}/00.mp4": 32 * MIB}
    assert doc["files"][0]["sha256"] == source.sha256_hex()
    # The killed invocation's parts stay an incomplete upload until the lifecycle rule removes them.
    assert len(incomplete_uploads(queue_mode, task_id)) <= 1


def test_burst_of_callbacks_archives_every_file_once(queue_mode: Stack) -> None:
    # Two workers take the jobs of 10 callbacks at once (`make bench` runs 500 and prints the timings).
    import random

    rng = random.Random(20)
    tasks: dict[str, list[str]] = {}
    for n in range(10):
        task = f"burst{n:03d}{rng.getrandbits(32):08x}"
        specs = [
            (rng.choice([".png", ".mp4", ".jpg"]), rng.randint(1, 64) * 1024)
            for _ in range(rng.randint(1, 3))
        ]
        tasks[task] = list(serve(queue_mode, task, specs))
    for task, urls in tasks.items():
        status, _ = post_callback(market_body(task, urls), task)
        assert status == 200
    workers = [start_worker(queue_mode) for _ in range(2)]
    reports = [worker_report(w) for w in workers]
    queue_mode.poller().drain()
    print(f"\nburst: {len(tasks)} callbacks; workers {[r['messages'] for r in reports]}")
    listing = (
        queue_mode.client("s3")
        .get_paginator("list_objects_v2")
        .paginate(Bucket=queue_mode.bucket, Prefix="kie/burst")
    )
    stored = [o["Key"] for page in listing for o in page.get("Contents", []) if "/callbacks/" not in o["Key"]]
    expected = [
        f"kie/{task}/{i:02d}{url[url.rfind('.') :]}"
        for task, urls in tasks.items()
        for i, url in enumerate(urls)
    ]
    assert sorted(stored) == sorted(expected)
    for task, urls in tasks.items():
        assert task_document(task)["state"] == "copied"
        for url in urls:
            assert queue_mode.emulator.download_url_calls[url] == 1


def test_connection_reset_and_stalled_body_are_retried(
    queue_mode: Stack, task_id: str, monkeypatch: Any
) -> None:
    import urllib3
    from devstack.kie_emulator import FileFault

    from kie2s3.adapters import http_source

    # A stalled body must hit the read timeout (30 s in production; 1 s here to keep the test short).
    monkeypatch.setattr(http_source, "_TIMEOUT", urllib3.Timeout(connect=5.0, read=1.0))
    served = serve(queue_mode, task_id, [(".mp4", 7 * MIB)])
    ((url, source),) = served.items()
    queue_mode.emulator.inject_file_fault(source.name, FileFault.reset())
    queue_mode.emulator.inject_file_fault(source.name, FileFault.stall(1024, 3.0))
    post_callback(market_body(task_id, [url]), task_id)
    _assert_copied_once_after(queue_mode, task_id, source, failed_requests=2)
