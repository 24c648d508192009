"""`make demo`: a signed Market callback with an image and a video, archived through the queue-mode flow,
and the events it put on EventBridge (read from a queue a rule on the bus delivers them to).

The functions run as `make up`'s do: from the runtime-only package (`devstack.package`), each in a
process of its own under Lambda's limits (`devstack.sandbox`); their logs go to .devstack/demo-function.log.

`make demo FORWARD=1` (`--forward`) also forwards the callback to a local receiver standing in for
your own handler, which verifies its signature with kie2s3's verifier and prints what it got.
"""

import argparse
import contextlib
import hashlib
import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from devstack.callbacks import callback_event, market_body, serve_result_files
from devstack.forward_receiver import ForwardReceiver
from devstack.kie_emulator import SyntheticFile
from devstack.lambda_runtime import task_status_event
from devstack.package import build
from devstack.sandbox import Function, Functions
from devstack.stack import FORWARD_HMAC_KEY, WEBHOOK_HMAC_KEY, Stack, local_stack
from devstack.template import load_template
from devstack.watch_events import describe

TASK_ID = "demo" + time.strftime("%Y%m%d%H%M%S")
LOG_PATH = Path(".devstack") / "demo-function.log"
# The template's functions the demo invokes, each run from the package (devstack.sandbox).
API, WORKER, EVENTS, FORWARDER = "ApiFunction", "CopyWorkerFunction", "EventsFunction", "ForwardFunction"
FILES = [
    (f"https://tempfile.aiquickdraw.com/p/{TASK_ID}_0.png", 512 * 1024),
    (f"https://tempfile.aiquickdraw.com/p/{TASK_ID}_1.mp4", 24 * 1024**2),
]


def _say(text: str = "") -> None:
    print(text, file=sys.__stdout__, flush=True)


def _forwarded(stack: Stack, receiver: ForwardReceiver, forwarder: Function) -> bool:
    """Run the forward function until its queue is empty; print what the receiver got."""
    # The function's own delays, as on Lambda.
    poller = stack.forward_poller(retry_delay=None, invoker=forwarder.invoke)
    poller.drain(timeout=120)
    _say()
    for got in receiver.received:
        verdict = "verified with kie2s3's verifier" if got.verified else f"REFUSED: {got.reason}"
        _say(f"forwarded to {receiver.url()}: {len(got.body):,} bytes, signature {verdict}")
        _say(f"    X-Webhook-Timestamp {got.headers.get('x-webhook-timestamp')}")
        _say(f"    X-Webhook-Signature {got.headers.get('x-webhook-signature')}")
        document = got.json()["kie2s3"]
        _say(
            f'    kie.ai\'s JSON, plus "kie2s3": task {document["taskId"]} {document["state"]}, '
            + ", ".join(f"{f['key']} ({f['state']})" for f in document["files"])
        )
    return len(receiver.received) == 1 and receiver.received[0].verified


def _archived_files(stack: Stack, document: dict[str, Any], served: dict[str, SyntheticFile]) -> bool:
    """Print where each file landed; whether each one's bytes equal the emulator's."""
    s3 = stack.client("s3")
    ok = True
    for entry, source in zip(document["files"], served.values(), strict=True):
        body = s3.get_object(Bucket=entry["bucket"], Key=entry["key"])["Body"].read()
        same = hashlib.sha256(body).hexdigest() == source.sha256_hex() == entry["sha256"]
        ok = ok and same
        _say(f"s3://{entry['bucket']}/{entry['key']}")
        _say(f"    {entry['bytes']:>10,} bytes  sha256 {entry['sha256']}  {entry['contentType']}")
        _say(f"    bytes equal the emulator's file: {'yes' if same else 'NO'}")
    return ok


def _events(events: list[dict[str, Any]]) -> bool:
    """Print the events the archive put on the bus; whether they are a File Archived per file and one
    Task Archived."""
    _say(f'EventBridge: {len(events)} event(s), as a rule matching {{"source": ["kie2s3"]}} delivers them')
    for event in sorted(events, key=lambda e: "files" in e["detail"]):  # files first
        _say(describe(event))
    archived = [e for e in events if e["detail-type"] == "Task Archived"]
    if archived:
        _say(json.dumps({k: archived[0][k] for k in ("source", "detail-type", "detail")}, indent=2))
    return len(archived) == 1 and len(events) == len(FILES) + 1


def _run(stack: Stack, lambdas: Functions, log: TextIO, receiver: ForwardReceiver | None = None) -> int:
    served = {}
    for n, (url, size) in enumerate(FILES):
        served.update(serve_result_files(stack.emulator, [url], size=size, seed=n + 7))
    _say(f"kie.ai emulator: {stack.emulator.base_url}   AWS emulator (moto): {stack.moto.endpoint_url}")
    _say(f"task {TASK_ID}: Market callback with {len(served)} files, signed with the webhook HMAC key")
    with contextlib.redirect_stdout(log):
        started = time.monotonic()
        answer = lambdas[API].invoke(
            callback_event(market_body(TASK_ID, list(served)), task_id=TASK_ID, hmac_key=WEBHOOK_HMAC_KEY)
        )
        ack_ms = (time.monotonic() - started) * 1000
        _say(
            f"POST /callbacks/kie -> {answer['statusCode']} in {ack_ms:.0f} ms (state {json.loads(answer['body'])['state']})"
        )
        if answer["statusCode"] != 200:
            return 1
        poller = stack.poller(invoker=lambdas[WORKER].invoke)
        poller.drain(timeout=300)
        _say(f"copy worker: {poller.invoked} SQS invocation(s)")
        # The template's starting position: the whole (new) ledger.
        stream = stack.stream_poller(starting_position=None, invoker=lambdas[EVENTS].invoke)
        stream.drain()
        _say(f"events function: {stream.invoked} invocation(s) over the ledger's stream")
        status = lambdas[API].invoke(task_status_event(TASK_ID))
        events = stack.take_events()
    document = json.loads(status["body"])
    _say()
    files_ok = _archived_files(stack, document, served)
    ok = document["state"] == "copied" and files_ok
    _say()
    ok = _events(events) and ok
    _say()
    _say(f"GET /tasks/{TASK_ID} -> {status['statusCode']}")
    _say(json.dumps(document, indent=2))
    if receiver is not None:
        with contextlib.redirect_stdout(log):
            ok = _forwarded(stack, receiver, lambdas[FORWARDER]) and ok
    _say(f"\nfunction logs and metrics: {LOG_PATH}")
    return 0 if ok else 1


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Start the local stack, run the flow, print where the files landed, stop everything."""
    parser = argparse.ArgumentParser(prog="devstack.demo", description=__doc__)
    parser.add_argument("--forward", action="store_true", help="forward the callback to a local receiver")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)
    LOG_PATH.parent.mkdir(exist_ok=True)
    try:
        with contextlib.ExitStack() as running:
            receiver = running.enter_context(ForwardReceiver(FORWARD_HMAC_KEY)) if args.forward else None
            overrides = {"ForwardUrl": receiver.url()} if receiver else None
            log = running.enter_context(LOG_PATH.open("w"))
            running.enter_context(contextlib.redirect_stdout(log))
            stack = running.enter_context(local_stack(copy_mode="queue", overrides=overrides))
            lambdas = running.enter_context(Functions(load_template(), stack.env, build(), output=log))
            # Each function's first environment, all at once (the API's, the copy worker's, ...).
            lambdas.warm(API, WORKER, EVENTS, *([FORWARDER] if receiver else []))
            return _run(stack, lambdas, log, receiver)
    except KeyboardInterrupt:
        _say("interrupted: local stack stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
