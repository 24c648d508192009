"""A 200 MiB file copied by the worker in its own process: exact bytes, and memory that stays flat."""

import hashlib
import uuid

from devstack.callbacks import market_body
from devstack.lambda_runtime import function_environment
from devstack.stack import Stack
from tests.integration.conftest import (
    objects_under,
    post_callback,
    serve,
    start_worker,
    worker_report,
)

from kie2s3.logic.services import DEFAULT_SHAPE

MIB = 1024**2
PEAK_RSS_LIMIT_MIB = 200


def test_copy_200_mib_streams_with_bounded_memory(queue_mode: Stack, task_id: str) -> None:
    served = serve(queue_mode, task_id, [(".mp4", 200 * MIB)])
    ((url, source),) = served.items()
    status, _ = post_callback(market_body(task_id, [url]), task_id)
    assert status == 200

    # The worker runs as its own process with exactly the function's environment, like a Lambda container.
    report = worker_report(start_worker(queue_mode))
    print(f"\n200 MiB copy: {report['seconds']} s, worker peak RSS {report['peak_rss_mib']} MiB")

    assert report["messages"] == 1
    key = f"kie/{task_id}/00.mp4"
    assert objects_under(queue_mode, key) == {key: 200 * MIB}
    digest = hashlib.sha256()
    body = queue_mode.client("s3").get_object(Bucket=queue_mode.bucket, Key=key)["Body"]
    for chunk in body.iter_chunks(8 * MIB):
        digest.update(chunk)
    assert digest.hexdigest() == source.sha256_hex()
    assert report["peak_rss_mib"] < PEAK_RSS_LIMIT_MIB


def test_worker_times_the_copies_after_its_warm_up_apart(queue_mode: Stack, task_id: str) -> None:
    # What `make bench` relies on: the first copy warms the container and is reported on its own.
    tasks = [task_id, uuid.uuid4().hex]
    for task, size in zip(tasks, (MIB, 12 * MIB), strict=True):
        served = serve(queue_mode, task, [(".mp4", size)])
        assert post_callback(market_body(task, list(served)), task)[0] == 200
    report = worker_report(start_worker(queue_mode, "--preload", "--warm-up", "1", "--max-messages", "2"))
    assert report["task_ids"] == tasks
    assert report["messages"] == 2
    assert report["warm_up_messages"] == 1
    assert report["warm_up_seconds"] > 0
    assert report["seconds"] > 0
    key = f"kie/{tasks[1]}/00.mp4"
    assert objects_under(queue_mode, key) == {key: 12 * MIB}


def test_parts_are_sized_for_the_declared_size(stack: Stack, task_id: str) -> None:
    # MAX_FILE_BYTES of 100 GiB needs 11 MiB parts to fit 10,000; a 20 MiB file declared as such
    # needs only the preferred 8 MiB: three parts, not two.
    with function_environment({**stack.env, "COPY_MODE": "inline", "MAX_FILE_BYTES": str(100 * 1024**3)}):
        served = serve(stack, task_id, [(".mp4", 20 * MIB)])
        ((_url, source),) = served.items()
        assert post_callback(market_body(task_id, list(served)), task_id)[0] == 200
    key = f"kie/{task_id}/00.mp4"
    s3 = stack.client("s3")
    first = s3.head_object(Bucket=stack.bucket, Key=key, PartNumber=1)
    assert (first["PartsCount"], first["ContentLength"]) == (3, DEFAULT_SHAPE.part_bytes)
    assert stack.emulator.file_requests[source.name] == 3
