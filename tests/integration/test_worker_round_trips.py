"""The bench's round-trip hooks, in a real worker process: every request of a copy, named and timed."""

from devstack.callbacks import market_body
from devstack.roundtrips import RoundTrip
from devstack.stack import Stack
from tests.integration.conftest import post_callback, serve, start_worker, task_document, worker_report

MIB = 1024**2


def test_worker_round_trips_are_the_copys_requests_as_the_servers_counted_them(
    queue_mode: Stack, task_id: str
) -> None:
    ((url, source),) = serve(queue_mode, task_id, [(".mp4", MIB)]).items()  # one part: one PutObject
    post_callback(market_body(task_id, [url]), task_id)

    report = worker_report(start_worker(queue_mode, "--round-trips"))

    assert task_document(task_id)["state"] == "copied"
    # Batches of one message, no warm-up: the n-th batch's requests are the n-th task's.
    rows = report["round_trips"][report["task_ids"].index(task_id)]
    trips = [RoundTrip.from_row(row) for row in rows]
    labels = [t.label for t in trips]
    # What the servers saw, the hooks saw: one download-url call, every GET of the source.
    assert labels.count("kie.ai download-url") == queue_mode.emulator.download_url_calls[url] == 1
    source_gets = [label for label in labels if label.startswith("source GET")]
    assert len(source_gets) == queue_mode.emulator.file_requests[source.name]
    assert "s3 PutObject" in labels
    assert not any(label.startswith("s3 CreateMultipartUpload") for label in labels)
    # The bookkeeping is named by table: the ledger's writes and the idempotency record's.
    assert any(t.service == "dynamodb" and t.operation.endswith("(ledger)") for t in trips)
    assert any(t.service == "dynamodb" and t.operation.endswith("(idempotency)") for t in trips)
    # The event source mapping's receive and delete are not the function's round trips.
    assert not any(label in ("sqs ReceiveMessage", "sqs DeleteMessage") for label in labels)
    assert all(0 <= t.start <= t.end for t in trips)
    # Times are the requests' own: the source is fetched from the link download-url answered.
    (resolve,) = [t for t in trips if t.label == "kie.ai download-url"]
    assert all(resolve.end <= t.start for t in trips if t.service == "source")
