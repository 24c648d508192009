"""`make invoke EVENT=events/<file>.json [MODE=queue]`: the docker-less stand-in for `sam local invoke`.

Runs one event through `app.lambda_handler` with the template's environment. With a local stack
running (`make up`), against it: the same ledger, bucket and queue, so `events/get-task.json` finds
the task an earlier callback recorded, and in queue mode the stack's copy worker runs the jobs.
Without one, against a throwaway stack started for this event and gone after it. Callback samples
are re-signed with the local HMAC key (their stored signatures are placeholders) and every URL in
them is served by the kie.ai emulator. The response is printed on stdout, its JSON body as JSON;
then, when the copy ran in the queue, the task's final status document. A DynamoDB stream sample
(`events/dynamodb-*.json`) runs as the events function: on a throwaway stack the events it put on
EventBridge are printed too (with `make up`, `make events` shows them). The function's logs go to
stderr.
"""

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from devstack.callbacks import RemoteEmulator, callback_body, load_event, resign, serve_result_files, urls_in
from devstack.cli import Parser, UserError, run
from devstack.running import StackState, running_stack_or_none, state_dir

if TYPE_CHECKING:
    from devstack.lambda_runtime import LambdaContext

FINAL_STATES = frozenset({"copied", "failed", "ignored"})
IN_FLIGHT = frozenset({"pending", "copying"})
WAIT_SECONDS = 120.0


def prepare(
    event: dict[str, Any], name: str, serve: Callable[[Iterable[str]], object], hmac_key: str | None
) -> dict[str, Any]:
    """A callback event ready to send: its URLs served by the emulator, signed afresh (unless hmac_key is None)."""
    if not str(event.get("rawPath", "")).startswith("/callbacks/"):
        return event
    body = callback_body(event, name)
    serve(urls_in(body))
    if hmac_key is None:
        return event
    from kie2s3.errors import BadRequestError
    from kie2s3.families import task_id_of

    try:
        return resign(event, task_id_of(body), hmac_key)
    except BadRequestError:
        return event  # no one task id to sign: the handler itself answers 400


def readable(result: Any) -> Any:
    """The handler's answer with its JSON body decoded (not an escaped string)."""
    if isinstance(result, dict) and isinstance(result.get("body"), str):
        with contextlib.suppress(ValueError):
            return {**result, "body": json.loads(result["body"])}
    return result


def task_of(event: dict[str, Any], result: Any) -> str | None:
    """The task an invocation was about: the status document's, else the copy job's."""
    body = readable(result).get("body") if isinstance(result, dict) else None
    if isinstance(body, dict) and isinstance(body.get("taskId"), str):
        return str(body["taskId"])
    for record in event.get("Records") or []:
        with contextlib.suppress(ValueError, TypeError, AttributeError, KeyError):
            if record.get("eventSource") == "aws:dynamodb":  # the ledger's stream: the item's task
                return str(record["dynamodb"]["Keys"]["pk"]["S"])
            return str(json.loads(record["body"])["task_id"])
    return None


def context_for(event: dict[str, Any]) -> "LambdaContext":
    """A context for the function the template gives this kind of event: its name, timeout and memory."""
    from devstack.local_api import template_routes
    from devstack.serve import function_context, scheduled_functions, sqs_function
    from devstack.template import load_template, stream_mappings
    from kie2s3.events import event_kind

    template = load_template()
    match event_kind(event):
        case "sqs":
            function = sqs_function(template)
        case "schedule":
            function = scheduled_functions(template)[0][0]
        case "dynamodb":
            function = stream_mappings(template)[0].function
        case _:
            function = template_routes(template)[0].function
    return function_context(template, function)


def _status(task_id: str) -> dict[str, Any] | None:
    from devstack.lambda_runtime import invoke, task_status_event

    answer = invoke(task_status_event(task_id))
    return json.loads(answer["body"]) if answer["statusCode"] == 200 else None


def wait_for_final(task_id: str, timeout: float = WAIT_SECONDS) -> dict[str, Any] | None:
    """The task's status document once no file of it is waiting or being copied (None: unknown task)."""
    deadline = time.monotonic() + timeout
    while True:
        document = _status(task_id)
        if document is None or document["state"] in FINAL_STATES:
            return document
        if not any(f["state"] in IN_FLIGHT for f in document["files"]) or time.monotonic() > deadline:
            return document  # waiting for kie.ai (a later stage), not for the queue
        time.sleep(0.25)


def _on_running_stack(stack: StackState, event: dict[str, Any], name: str, args: Any) -> tuple[Any, Any]:
    from devstack.lambda_runtime import function_environment, invoke

    emulator = RemoteEmulator(stack.emulator_url, stack.kie_api_key)
    event = prepare(event, name, emulator.serve, None if args.no_resign else stack.hmac_key)
    with function_environment({**stack.env, "COPY_MODE": args.mode}):
        result = invoke(event, context_for(event))
        task_id = task_of(event, result)
        queued = args.mode == "queue" or "Records" in event
        final = wait_for_final(task_id, args.wait) if queued and task_id else None
    return result, final


def _on_throwaway_stack(event: dict[str, Any], name: str, args: Any) -> tuple[Any, Any]:
    from devstack.lambda_runtime import invoke
    from devstack.stack import WEBHOOK_HMAC_KEY, local_stack

    with local_stack(copy_mode=args.mode) as stack:
        serve = lambda urls: serve_result_files(stack.emulator, urls)  # noqa: E731
        event = prepare(event, name, serve, None if args.no_resign else WEBHOOK_HMAC_KEY)
        with stack.function():
            result = invoke(event, context_for(event))
            task_id = task_of(event, result)
            if args.mode == "queue":
                stack.poller().drain()
            final = _status(task_id) if task_id and (args.mode == "queue" or "Records" in event) else None
        for published in stack.take_events():
            print(f"event on EventBridge: {json.dumps(published)}")
    return result, final


def main(argv: Sequence[str] | None = None) -> int:
    """Run one event through `app.lambda_handler`; print the response (and the final state in queue mode)."""
    parser = Parser(prog="devstack.invoke", description=__doc__)
    parser.add_argument("event", help="an events/ file, e.g. events/callback-market-success.json")
    parser.add_argument("--mode", choices=("inline", "queue"), default="inline", help="copy mode (COPY_MODE)")
    parser.add_argument("--no-resign", action="store_true", help="keep the event's own signature headers")
    parser.add_argument("--state-dir", help="the local stack's state directory (default .devstack/up)")
    parser.add_argument("--wait", type=float, default=WAIT_SECONDS, help="seconds to wait for the queue")
    args = parser.parse_args(argv)
    if not args.event:
        raise UserError("no event: make invoke EVENT=events/<file>.json (the samples are in events/)")
    event = load_event(args.event)
    if str(event.get("rawPath", "")).startswith("/callbacks/"):
        callback_body(event, args.event)  # a body that is not JSON says so before any stack starts
    stack = running_stack_or_none(state_dir(args.state_dir))
    with contextlib.redirect_stdout(sys.stderr):  # the function's logs; stdout carries the answer
        if stack is not None:
            print(f"invoking against the running local stack ({stack.api_url}, {args.mode} mode)")
            result, final = _on_running_stack(stack, event, args.event, args)
        else:
            print(
                "no local stack running (make up starts one): this event runs against a throwaway stack, "
                f"{args.mode} mode; its ledger, bucket and queue end with it"
            )
            result, final = _on_throwaway_stack(event, args.event, args)
    print(json.dumps(readable(result), indent=2, default=str))
    if final is not None:
        print(f"\nfinal state of task {final['taskId']}: {final['state']}")
        print(json.dumps(final, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
