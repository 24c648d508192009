"""Run the copy worker in this process, as one Lambda container would, and report its peak RSS.

Used by tests and benchmarks that measure the worker alone: `python -m devstack.worker` with the
function's environment; it handles SQS batches until the queue is empty and prints one JSON line.
"""

import argparse
import json
import os
import resource
import sys
import time

import boto3

from devstack.lambda_runtime import SqsPoller


def main(argv: list[str] | None = None) -> int:
    """Drain the copy queue through `app.lambda_handler`; print messages handled, seconds, peak RSS."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeout-seconds", type=float, default=900.0, help="the function's Lambda timeout")
    parser.add_argument("--max-messages", type=int, default=0, help="stop after this many (0: until empty)")
    args = parser.parse_args(argv)
    sqs = boto3.client("sqs")
    url = os.environ["COPY_QUEUE_URL"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    poller = SqsPoller(sqs=sqs, queue_url=url, queue_arn=arn, timeout_seconds=args.timeout_seconds)
    started = time.monotonic()
    handled = 0
    while (received := poller.poll_once(wait_seconds=2)) > 0:
        handled += received
        if args.max_messages and handled >= args.max_messages:
            break
    report = {
        "messages": handled,
        "seconds": round(time.monotonic() - started, 3),
        # Linux reports ru_maxrss in KiB.
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print("WORKER-REPORT " + json.dumps(report), file=sys.__stdout__, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
