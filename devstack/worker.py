"""Run the copy worker in this process, as one Lambda container would, and report its peak RSS.

Used by tests and benchmarks that measure the worker alone: `python -m devstack.worker` with the
function's environment; it handles SQS batches until the queue is empty and prints one JSON line.
With FORWARD_URL set, it then runs the forward jobs the same way (as the forward function would).
With --round-trips the line also holds the HTTP requests of each invocation after the warm-up
(devstack.roundtrips: botocore's and urllib3's own events, whatever the copy's code).
"""

import argparse
import json
import os
import resource
import sys
import time
from typing import Any

import boto3

from devstack.lambda_runtime import SqsPoller
from devstack.roundtrips import Recorder, segments
from devstack.soak.aws_faults import hook_mapping
from devstack.soak.aws_faults import install_from_env as install_aws_faults


def peak_rss_mib() -> float:
    """This process's peak RSS in MiB.

    Linux's VmHWM, not ru_maxrss: ru_maxrss survives fork and exec, so a worker started by a larger
    process (pytest, the bench) would report its parent's peak instead of its own.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)  # kB
    except OSError:
        pass
    # Elsewhere, ru_maxrss (KiB on Linux, bytes on macOS).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024**2 if sys.platform == "darwin" else 1024), 1)


def main(argv: list[str] | None = None) -> int:
    """Drain the copy queue through `app.lambda_handler`; print what was handled, the handler's time and peak RSS."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeout-seconds", type=float, default=900.0, help="the function's Lambda timeout")
    parser.add_argument("--max-messages", type=int, default=0, help="stop after this many (0: until empty)")
    parser.add_argument(
        "--visibility-timeout",
        type=int,
        metavar="SECONDS",
        help="how long a message this worker receives stays hidden from others (default: the queue's)",
    )
    parser.add_argument(
        "--preload",
        action="store_true",
        help="import app before the clock starts, as Lambda's init phase does (seconds then time the copy)",
    )
    parser.add_argument(
        "--warm-up",
        type=int,
        default=0,
        metavar="N",
        help="the first N messages warm the container (lazy imports, clients, secrets) before the clock "
        "starts: the figures are then those of a warm container's invocations",
    )
    parser.add_argument(
        "--round-trips",
        action="store_true",
        help="report the HTTP requests of each invocation after the warm-up (botocore's and urllib3's events)",
    )
    args = parser.parse_args(argv)
    # The event source mapping's client is built before the recorder hooks clients: receiving and
    # deleting messages are not the function's round trips.
    sqs = boto3.client("sqs")
    recorder = Recorder(os.environ) if args.round_trips else None
    # `make soak`'s, when it asks: faults and kills on the function's clients; on the mapping's,
    # only lost answers to its DeleteMessage (applied, then a connection error) and a kill before it.
    install_aws_faults()
    hook_mapping(sqs)
    if recorder is not None:
        recorder.install()
    if args.preload:
        import app  # noqa: F401
    url = os.environ["COPY_QUEUE_URL"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    task_ids: list[str] = []
    batch_starts: list[float] = []
    batch_cpu: list[float] = []

    def on_batch(event: dict[str, Any]) -> None:
        batch_starts.append(time.perf_counter())
        batch_cpu.append(time.process_time())
        task_ids.extend(_task_id(record) for record in event["Records"])

    poller = SqsPoller(
        sqs=sqs,
        queue_url=url,
        queue_arn=arn,
        timeout_seconds=args.timeout_seconds,
        visibility_timeout=args.visibility_timeout,
        on_batch=on_batch,
    )
    init_rss_mib = peak_rss_mib()
    handled = 0
    warm_up_batches = 0
    while (received := _next_batch(poller)) > 0:
        handled += received
        if handled <= args.warm_up:
            warm_up_batches = poller.invoked
        if args.max_messages and handled >= args.max_messages:
            break
    forwarded = _forward_jobs(sqs, args.timeout_seconds) if os.environ.get("FORWARD_URL") else 0
    durations = poller.invocation_seconds
    report = {
        "messages": handled,
        "forward_messages": forwarded,
        "task_ids": task_ids,  # in the order handled
        "warm_up_messages": min(handled, args.warm_up),
        # The handler's time, as Lambda's Duration (receiving and deleting are the event source mapping's)
        "warm_up_seconds": round(sum(durations[:warm_up_batches]), 3),
        "seconds": round(sum(durations[warm_up_batches:]), 3),  # the invocations after the warm-up
        "cpu_seconds": round(time.process_time(), 3),  # the whole process: imports, warm-up and copies
        # The process's CPU (every thread) from the first batch after the warm-up to the end.
        "measured_cpu_seconds": round(time.process_time() - batch_cpu[warm_up_batches], 3)
        if len(batch_cpu) > warm_up_batches
        else 0.0,
        # When the measured invocations began: time.perf_counter(), the system's monotonic clock on
        # Linux, so that another process can tell what happened meanwhile (the bench: servers' CPU).
        "measured_started_at": batch_starts[warm_up_batches] if len(batch_starts) > warm_up_batches else None,
        "peak_rss_mib": peak_rss_mib(),
        "init_rss_mib": init_rss_mib,  # peak before the first batch: imports (with --preload) and the SQS client
    }
    if recorder is not None:
        measured = batch_starts[warm_up_batches:]
        report["round_trips"] = [
            [trip.row(origin=start) for trip in batch]
            for start, batch in zip(measured, segments(recorder.trips(), measured), strict=True)
        ]
    print("WORKER-REPORT " + json.dumps(report), file=sys.__stdout__, flush=True)
    return 0


def _next_batch(poller: SqsPoller, idle_seconds: float = 2.0) -> int:
    """Handle the next batch and return its size; 0 means stop: the queue holds nothing at all, or
    nothing came for `idle_seconds` while messages were in flight elsewhere (another worker's)."""
    give_up = time.monotonic() + idle_seconds
    while True:
        received = poller.poll_once(wait_seconds=0)
        if received or poller.outstanding() == 0 or time.monotonic() > give_up:
            return received
        if received := poller.poll_once(wait_seconds=1):
            return received


def _forward_jobs(sqs: Any, timeout_seconds: float) -> int:
    """Deliver forward jobs until the forward queue is empty; how many deliveries that took."""
    url = os.environ["FORWARD_QUEUE_URL"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    poller = SqsPoller(
        sqs=sqs, queue_url=url, queue_arn=arn, timeout_seconds=timeout_seconds, function_name="kie2s3-forward"
    )
    delivered = 0
    while (received := _next_batch(poller)) > 0:
        delivered += received
    return delivered


def _task_id(record: dict[str, Any]) -> str:
    from kie2s3.models import CopyJob

    try:
        return CopyJob.model_validate_json(record["body"]).task_id
    except ValueError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
