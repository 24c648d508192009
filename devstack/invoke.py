"""`make invoke EVENT=events/<file>.json [MODE=queue]`: the docker-less stand-in for `sam local invoke`.

Runs one event through `app.lambda_handler` with the template's environment. With a local stack
running (`make up`), against it: the same ledger, bucket and queue, so `events/get-task.json` finds
the task an earlier callback recorded, and in queue mode the stack's copy worker runs the jobs.
Without one, against a throwaway stack started for this event and gone after it. Callback samples
are re-signed with the local HMAC key (their stored signatures are placeholders) and every URL in
them is served by the kie.ai emulator; so are the URLs of `POST /copies` samples, whose Market
tasks record-info is made to know. A queue sample runs as the function of its queue (the copy
worker, or the forwarder when forwarding is on). The response is printed on stdout, its JSON body as JSON;
then, when the copy ran in the queue, the task's final status document. A DynamoDB stream sample
(`events/dynamodb-*.json`) runs as the events function: on a throwaway stack the events it put on
EventBridge are printed too (with `make up`, `make events` shows them). The function's logs go to
stderr. An event the function does not take, or not whole, is one line before anything starts; so is
a function error, as Lambda reports it.
"""

import contextlib
import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from devstack.callbacks import (
    RemoteEmulator,
    callback_body,
    load_event,
    market_body,
    resign,
    serve_result_files,
    urls_in,
)
from devstack.cli import Parser, UserError, run
from devstack.running import StackState, running_stack_or_none, state_dir

if TYPE_CHECKING:
    from devstack.kie_emulator import KieEmulator
    from devstack.lambda_runtime import LambdaContext

FINAL_STATES = frozenset({"copied", "failed", "ignored"})
IN_FLIGHT = frozenset({"pending", "copying"})
WAIT_SECONDS = 120.0


class Emulator(Protocol):
    """What a sample needs of the kie.ai emulator: its result files served, its tasks known to record-info."""

    def serve(self, urls: Iterable[str]) -> object:
        """Serve a synthetic file under each URL."""
        ...

    def add_task(self, family: str, task_id: str, data: Mapping[str, Any]) -> None:
        """Register what the family's record-info answers for the task."""
        ...


@dataclass(frozen=True)
class InProcessEmulator:
    """The throwaway stack's emulator, in this process."""

    emulator: "KieEmulator"

    def serve(self, urls: Iterable[str]) -> object:
        """Serve a synthetic file under each URL."""
        return serve_result_files(self.emulator, urls)

    def add_task(self, family: str, task_id: str, data: Mapping[str, Any]) -> None:
        """Register what the family's record-info answers for the task."""
        self.emulator.add_task(family, task_id, dict(data))


def prepare(event: dict[str, Any], name: str, emulator: Emulator, hmac_key: str | None) -> dict[str, Any]:
    """An event ready to send: a callback's URLs served by the emulator and the callback signed afresh
    (unless hmac_key is None); a `POST /copies` sample's URLs served, or its Market tasks made known to
    record-info (finished, one image each)."""
    path = str(event.get("rawPath", ""))
    if path == "/copies":
        _stage_copies(_json_body(event), emulator)
        return event
    if not path.startswith("/callbacks/"):
        return event
    body = callback_body(event, name)
    emulator.serve(urls_in(body))
    if hmac_key is None:
        return event
    from kie2s3.errors import BadRequestError
    from kie2s3.families import task_id_of

    try:
        return resign(event, task_id_of(body), hmac_key)
    except BadRequestError:
        return event  # no one task id to sign: the handler itself answers 400


def _json_body(event: Mapping[str, Any]) -> Any:
    with contextlib.suppress(ValueError, TypeError):
        return json.loads(event.get("body") or "")
    return None  # the handler answers 400


def _stage_copies(body: Any, emulator: Emulator) -> None:
    if not isinstance(body, dict):
        return
    if isinstance(body.get("urls"), list):
        emulator.serve(u for u in body["urls"] if isinstance(u, str))
        return
    if body.get("family") != "market":
        return  # record-info of another family answers "unknown" for the sample's tasks
    named = body.get("taskIds")
    task_ids: list[Any] = named if isinstance(named, list) else [body.get("taskId")]
    for task_id in (t for t in task_ids if isinstance(t, str)):
        urls = [f"https://tempfile.aiquickdraw.com/p/{task_id}_0.png"]
        emulator.serve(urls)
        emulator.add_task("market", task_id, market_body(task_id, urls)["data"])


_KIND_NAMES: Final = {
    "http": "API Gateway HTTP API (2.0) request",
    "sqs": "SQS batch",
    "dynamodb": "DynamoDB stream batch",
}


def check_event(event: dict[str, Any], name: str) -> str:
    """The event's kind, once it is one the function takes and whole, as Lambda would deliver it (by
    Powertools' models of those events); else a UserError naming what is wrong, before any stack starts."""
    from kie2s3.events import event_kind

    kind = event_kind(event)
    if kind == "unknown":
        raise UserError(
            f"{name} is no event the function takes: an {_KIND_NAMES['http']}, an {_KIND_NAMES['sqs']},"
            f" a {_KIND_NAMES['dynamodb']} or the reconcile schedule's input, as in events/"
        )
    model = _event_models().get(kind)
    if model is not None:
        from pydantic import ValidationError

        try:
            model.model_validate(event)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "the event"
            raise UserError(
                f"{name} is not a whole {_KIND_NAMES[kind]}: {where}: {first['msg']} (see events/ for one)"
            ) from None
    return kind


def _event_models() -> dict[str, Any]:
    from aws_lambda_powertools.utilities.parser.models import (
        APIGatewayProxyEventV2Model,
        DynamoDBStreamModel,
        SqsModel,
    )

    return {"http": APIGatewayProxyEventV2Model, "sqs": SqsModel, "dynamodb": DynamoDBStreamModel}


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


def sqs_function_for(
    template: Mapping[str, Any], event: dict[str, Any], env: Mapping[str, str]
) -> tuple[str, str]:
    """The function whose queue an SQS sample's records come from, and the variable naming that queue.

    The function routes a record by the queue named last in its `eventSourceARN`: the one `env`
    names, or, for a sample written for another stack, the queue of the same logical id (samples
    name theirs as the local stack does, `<stack>-<logical id in lower case>`). A UserError when the
    stack has no such queue (a forward job while forwarding is off)."""
    from devstack.serve import sqs_functions

    queue = str(event["Records"][0]["eventSourceARN"]).rsplit(":", 1)[-1]
    variables = (
        (template.get("Globals") or {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    )
    routes = sqs_functions(template, {"ForwardUrl": env.get("FORWARD_URL", "")})
    for function, variable in routes:
        url, logical_id = env.get(variable, ""), str(variables[variable]["Ref"])
        if url and (url.rsplit("/", 1)[-1] == queue or queue.lower().endswith(f"-{logical_id.lower()}")):
            return function, variable
    read = ", ".join(env[variable].rsplit("/", 1)[-1] for _, variable in routes if env.get(variable))
    raise UserError(
        f"its records come from queue {queue}; this stack's functions read {read}"
        " (a forward job needs forwarding on: make up FORWARD=1)"
    )


def function_for(template: Mapping[str, Any], event: dict[str, Any], env: Mapping[str, str]) -> str:
    """The function (logical id) the template gives this event; `env`, the stack's function
    environment, names its queues."""
    from devstack.local_api import template_routes
    from devstack.serve import scheduled_functions
    from devstack.template import stream_mappings
    from kie2s3.events import event_kind

    match event_kind(event):
        case "sqs":
            return sqs_function_for(template, event, env)[0]
        case "schedule":
            return scheduled_functions(template)[0][0]
        case "dynamodb":
            return stream_mappings(template)[0].function
        case _:
            return template_routes(template)[0].function


def context_for(event: dict[str, Any], env: Mapping[str, str]) -> "LambdaContext":
    """A context for the function the template gives this event: its name, timeout and memory."""
    from devstack.serve import function_context
    from devstack.template import load_template

    template = load_template()
    return function_context(template, function_for(template, event, env))


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


def run_function(event: dict[str, Any], context: "LambdaContext") -> Any:
    """The function's answer to the event; a function error is one line, as Lambda reports it (its type
    and message; the function's logs, on stderr, have the rest)."""
    from devstack.lambda_runtime import invoke

    try:
        return invoke(event, context)
    except Exception as exc:  # what Lambda answers as an Unhandled function error
        raise UserError(f"the function failed: {type(exc).__name__}: {exc}", status=1) from None


def _on_running_stack(stack: StackState, event: dict[str, Any], name: str, args: Any) -> tuple[Any, Any]:
    from devstack.lambda_runtime import function_environment

    emulator = RemoteEmulator(stack.emulator_url, stack.kie_api_key)
    event = prepare(event, name, emulator, None if args.no_resign else stack.hmac_key)
    context = context_for(event, stack.env)
    with function_environment({**stack.env, "COPY_MODE": args.mode}):
        result = run_function(event, context)
        task_id = task_of(event, result)
        queued = args.mode == "queue" or "Records" in event
        final = wait_for_final(task_id, args.wait) if queued and task_id else None
    return result, final


def _on_throwaway_stack(event: dict[str, Any], name: str, args: Any) -> tuple[Any, Any]:
    from devstack.stack import WEBHOOK_HMAC_KEY, local_stack

    with local_stack(copy_mode=args.mode) as stack:
        emulator = InProcessEmulator(stack.emulator)
        event = prepare(event, name, emulator, None if args.no_resign else WEBHOOK_HMAC_KEY)
        context = context_for(event, stack.env)
        with stack.function():
            result = run_function(event, context)
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
    check_event(event, args.event)
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
