"""`make events [FOLLOW=1] [JSON=1]`: the events kie2s3 put on EventBridge, from a running `make up`.

The local stack subscribes a queue to the bus with a rule matching `{"source": ["kie2s3"]}` (what a
user's rule would do); this reads that queue and prints one line per event (`--json`: the events
themselves, one JSON object a line). Each event is shown once: reading takes it off the queue.
`--follow` goes on printing events as they come, until Ctrl-C.
"""

import json
import sys
from collections.abc import Sequence
from typing import Any

from devstack.cli import Parser, run
from devstack.running import running_stack, state_dir


def describe(event: dict[str, Any]) -> str:
    """One line for an event: its detail-type, task, and where the file landed or why it did not."""
    detail = event.get("detail") or {}
    kind = str(event.get("detail-type"))
    what = f"{kind:<14} task {detail.get('taskId')}"
    if "files" in detail:  # a task's event
        states = [f.get("state") for f in detail["files"]]
        what += f"  {len(states)} file(s) {', '.join(sorted(set(map(str, states)))) or '-'}"
    elif detail.get("state") == "copied":
        what += f"  #{detail.get('index')} s3://{detail.get('bucket')}/{detail.get('key')}"
        what += f"  {detail.get('bytes')} bytes {detail.get('contentType')}"
    else:
        what += f"  #{detail.get('index')} {detail.get('source')}"
    if detail.get("reason") or detail.get("error"):
        what += f"  ({detail.get('reason') or detail.get('error')})"
    return f"{what}\n    dedupeId {detail.get('dedupeId')}"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the events the running local stack's subscription has received."""
    import boto3

    from devstack.aws import aws_environment
    from devstack.stack import take_events

    parser = Parser(prog="devstack.watch_events", description=__doc__)
    parser.add_argument("--follow", action="store_true", help="go on printing events as they come")
    parser.add_argument("--json", action="store_true", help="print the events themselves, one a line")
    parser.add_argument("--state-dir", help="the local stack's state directory (default .devstack/up)")
    args = parser.parse_args(argv)
    state = running_stack(state_dir(args.state_dir))
    settings = aws_environment(state.aws_url)
    sqs = boto3.client(
        "sqs",
        endpoint_url=settings["AWS_ENDPOINT_URL"],
        region_name=settings["AWS_DEFAULT_REGION"],
        aws_access_key_id=settings["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=settings["AWS_SECRET_ACCESS_KEY"],
    )
    queue_url = state.events_queue_url
    shown = 0
    while True:
        for event in take_events(sqs, queue_url, wait_seconds=1 if args.follow else 0):
            print(json.dumps(event) if args.json else describe(event), flush=True)
            shown += 1
        if not args.follow:
            break
    if not shown and not args.json:
        print(f"no new events (the stack's subscription: {queue_url})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
