"""`make backfill`: record tasks whose callbacks never arrived, through `POST /copies` in bulk.

kie.ai gives up on a callback after three failed deliveries (an outage, a throttled burst): those
tasks are unknown to kie2s3. Give their ids, one a line (blank lines and `#` comments skipped), and
the family whose record-info knows them:

    make backfill FAMILY=market TASKS=lost-tasks.txt STACK_NAME=kie2s3

FAMILY is checked first, as the API checks it (a family with a record-info endpoint), before any
stack is asked. With STACK_NAME, the stack's `ApiUrl` output is read through CloudFormation and
each batch is a SigV4-signed request (service `execute-api`, the default credential chain).
Without it, the running local stack (`make up`) when there is one, as `make invoke` uses it: its
ledger, bucket, queue and kie.ai emulator. Else a throwaway local stack runs in-process (moto and
the kie.ai emulator, copies inline), which knows only what is seeded into its emulator: a dry run
of the path, every id reported unknown.

Batches hold 50 ids (the route's cap); a task the API lists as a retryable error is sent again in
a later batch, up to three tries. A task the API had no time to reach (`processed` false) was not
tried: it is sent again without counting a try, as long as each batch gets something done. For
each batch, and in total, it prints what was queued or recorded (task id -> state), what
record-info did not know, what failed and what was never processed. Exit status 1 when any task was
not recorded (unknown to record-info, an error, not processed, or in a batch the API refused), 0
when every one was.
"""

import argparse
import collections
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from devstack.cli import Parser, UserError, run
from devstack.running import StackState, running_stack_or_none, state_dir
from kie2s3.models import MAX_URLS_PER_REQUEST, TASK_ID_PATTERN

# One `POST /copies` bulk body: as many task ids as the route takes.
BATCH_SIZE = MAX_URLS_PER_REQUEST
ATTEMPTS = 3
# The API function's timeout (template.yaml): the local run gets the same deadline as a deployed one.
API_TIMEOUT_SECONDS = 29.0
_LABEL = {"recorded": "queued/recorded", "unknown": "unknown", "error": "error", "later": "not processed"}

# Sends one bulk body to `POST /copies`; answers the HTTP status and the decoded JSON body.
Send = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


@dataclass
class Summary:
    """What a backfill did, per task id; `unsent`: ids never answered for (a batch was refused);
    `not_processed`: ids the API never had time to reach (a batch got nothing done)."""

    recorded: dict[str, str] = field(default_factory=dict)  # task id -> state
    unknown: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # task id -> message
    unsent: list[str] = field(default_factory=list)
    not_processed: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every task was recorded."""
        return not self.unknown and not self.errors and not self.unsent and not self.not_processed


def read_task_ids(lines: Iterable[str]) -> list[str]:
    """The task ids of a task file, in order and once each; ValueError names a line that is not one."""
    found: dict[str, None] = {}
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if not TASK_ID_PATTERN.match(text):
            raise ValueError(f"line {number}: {text!r} is not a kie.ai task id")
        found[text] = None
    return list(found)


def backfill(
    send: Send, family: str, task_ids: list[str], *, out: TextIO | None = None, attempts: int = ATTEMPTS
) -> Summary:
    """Send the ids in batches of BATCH_SIZE, print each batch's answer and the total; the summary.

    A task the API lists as a retryable error goes into a later batch until it has been sent
    `attempts` times; one it did not process (no time left) goes into a later batch without counting
    a try, unless the batch got nothing done: then it and the rest are `not_processed` and the run
    stops. A batch answered with anything but 200/202 stops the run: its ids and the rest are `unsent`.
    """
    out = out or sys.stdout
    summary = Summary()
    waiting = collections.deque(task_ids)
    tries: collections.Counter[str] = collections.Counter()
    batches = 0
    while waiting:
        batch = [waiting.popleft() for _ in range(min(BATCH_SIZE, len(waiting)))]
        batches += 1
        tries.update(batch)
        status, answer = send({"taskIds": batch, "family": family})
        print(f"batch {batches}: {len(batch)} task(s), HTTP {status}", file=out)
        if status not in (200, 202):
            summary.unsent = [*batch, *waiting]
            print(f"  refused: HTTP {status}: {_message(answer)}", file=out)
            break
        _take_settled(answer, summary, out)
        waiting.extend(_take_errors(answer, summary, out, retry=lambda task_id: tries[task_id] < attempts))
        unreached = [e["taskId"] for e in answer["errors"] if e.get("processed") is False]
        if unreached and len(unreached) == len(batch):
            summary.not_processed = [*unreached, *waiting]
            print("  nothing processed: the API had no time for any task of this batch; stopping", file=out)
            break
        tries.subtract(unreached)  # not tried: sending them again costs none of their tries
        waiting.extend(unreached)
        for task_id in unreached:
            _line(out, "later", task_id, "(no time left in the request: sent again in a later batch)")
    _print_total(out, family, len(task_ids), batches, summary)
    return summary


def _take_settled(answer: dict[str, Any], summary: Summary, out: TextIO) -> None:
    """A batch's recorded tasks and the ones record-info does not know, into the summary."""
    for task in answer["tasks"]:
        summary.recorded[task["taskId"]] = task["state"]
        summary.errors.pop(task["taskId"], None)
        _line(out, "recorded", task["taskId"], task["state"])
    for task_id in answer["unknown"]:
        summary.unknown.append(task_id)
        summary.errors.pop(task_id, None)
        _line(out, "unknown", task_id, "(record-info does not know it)")


def _take_errors(
    answer: dict[str, Any], summary: Summary, out: TextIO, retry: Callable[[str], bool]
) -> list[str]:
    """A batch's errors (those of tasks it processed) into the summary; the retryable ones `retry`
    allows, to be sent again."""
    again = []
    for error in answer["errors"]:
        if error.get("processed") is False:
            continue
        task_id, message = error["taskId"], error["message"]
        summary.errors[task_id] = message
        if error["retryable"] and retry(task_id):
            again.append(task_id)
            message += " (sent again in a later batch)"
        _line(out, "error", task_id, message)
    return again


def _line(out: TextIO, kind: str, task_id: str, text: str) -> None:
    print(f"  {_LABEL[kind]:<15}  {task_id}  {text}", file=out)


def _message(answer: dict[str, Any]) -> str:
    details = answer.get("details") or []
    return "; ".join([str(answer.get("message", "")), *map(str, details)]).strip("; ")


def _print_total(out: TextIO, family: str, count: int, batches: int, summary: Summary) -> None:
    states = collections.Counter(summary.recorded.values())
    by_state = ", ".join(f"{state} {n}" for state, n in sorted(states.items()))
    print(f"total: {count} task(s) of family {family} in {batches} batch(es)", file=out)
    print(f"  queued/recorded: {len(summary.recorded)}" + (f" ({by_state})" if by_state else ""), file=out)
    print(f"  unknown to record-info: {len(summary.unknown)}", file=out)
    for task_id in summary.unknown:
        print(f"    {task_id}", file=out)
    print(f"  errors: {len(summary.errors)}", file=out)
    for task_id, message in summary.errors.items():
        print(f"    {task_id}: {message}", file=out)
    if summary.not_processed:
        print(f"  not processed (no time left in the API's requests): {len(summary.not_processed)}", file=out)
        for task_id in summary.not_processed:
            print(f"    {task_id}", file=out)
    if summary.unsent:
        print(f"  not sent: {len(summary.unsent)}", file=out)
        for task_id in summary.unsent:
            print(f"    {task_id}", file=out)


def local_sender(invoker: Callable[[dict[str, Any], Any], Any] | None = None) -> Send:
    """`POST /copies` through `app.lambda_handler` in-process (inside a local stack's `function()`),
    or through `invoker(event, context)` (the soak's, one invocation at a time)."""
    from devstack.lambda_runtime import LambdaContext, http_event, invoke

    def send(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        context = LambdaContext(function_name="kie2s3-api", timeout_seconds=API_TIMEOUT_SECONDS)
        answer = (invoker or invoke)(http_event("POST", "/copies", body=body), context)
        return int(answer["statusCode"]), json.loads(answer.get("body") or "{}")

    return send


def api_url_of(cloudformation: Any, stack_name: str) -> str:
    """A deployed stack's `ApiUrl` output."""
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return str(outputs["ApiUrl"])


def deployed_sender(session: Any, api_url: str, *, http: Any = None) -> Send:
    """`POST <api_url>/copies`, SigV4-signed (`execute-api`) with the session's credentials."""
    from botocore.exceptions import HTTPClientError
    from botocore.httpsession import URLLib3Session

    from devstack.call import request
    from devstack.sigv4 import api_region

    region = api_region(api_url, session.region_name)
    client = http or URLLib3Session(timeout=int(API_TIMEOUT_SECONDS) + 5)

    def send(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        credentials = session.get_credentials()
        if credentials is None:
            raise SystemExit("no AWS credentials found (the default chain: env, profile, SSO, role)")
        try:
            response = request(
                api_url,
                "POST",
                "/copies",
                body=json.dumps(body).encode(),
                credentials=credentials,
                region=region,
                http=client,
            )
        except HTTPClientError as exc:
            return 0, {"message": f"no answer: {exc}"}
        try:
            answer = json.loads(response.body)
        except ValueError:
            answer = {"message": response.body[:200].decode(errors="replace")}
        return response.status, answer if isinstance(answer, dict) else {"message": str(answer)}

    return send


def check_family(family: str) -> None:
    """A UserError unless `family` is one the API's bulk form takes (known, with a record-info endpoint)."""
    from kie2s3.errors import BadRequestError
    from kie2s3.logic.copies import record_info_parser

    try:
        record_info_parser(family)
    except BadRequestError as exc:
        raise UserError(f"FAMILY={family}: {exc.reason}") from None


def _task_ids(path: Path) -> list[str]:
    try:
        return read_task_ids(path.read_text().splitlines())
    except (OSError, ValueError) as exc:
        raise UserError(f"TASKS={path}: {exc}") from None


def _to_deployed(stack_name: str, family: str, task_ids: list[str]) -> Summary:
    from botocore.exceptions import BotoCoreError, ClientError

    from devstack.cli import aws_session

    session = aws_session(f"make backfill STACK_NAME={stack_name}")
    try:
        api_url = api_url_of(session.client("cloudformation"), stack_name)
    except (BotoCoreError, ClientError, KeyError) as exc:
        raise UserError(f"cannot read the ApiUrl output of stack {stack_name!r}: {exc!r}", status=1) from exc
    print(f"{len(task_ids)} task(s) of family {family} to {api_url} (stack {stack_name})")
    return backfill(deployed_sender(session, api_url), family, task_ids)


def _to_running(stack: StackState, family: str, task_ids: list[str]) -> Summary:
    from devstack.lambda_runtime import function_environment

    print(
        f"{len(task_ids)} task(s) of family {family} to the running local stack ({stack.api_url},"
        f" {stack.mode} mode): its ledger, bucket, queue and kie.ai emulator"
    )
    # The function's INFO logs would bury the report: warnings and errors only (make logs has them all).
    with function_environment({**stack.env, "POWERTOOLS_LOG_LEVEL": "WARNING"}):
        return backfill(local_sender(), family, task_ids)


def _to_throwaway(family: str, task_ids: list[str]) -> Summary:
    from devstack.stack import local_stack

    print(
        "no STACK_NAME and no local stack running: a throwaway local stack, in-process (moto and the"
        " kie.ai emulator, copies inline); its emulator knows only the tasks seeded into it, so expect"
        " every id to be unknown"
    )
    with local_stack(copy_mode="inline", overrides={"LogLevel": "WARNING"}) as stack, stack.function():
        return backfill(local_sender(), family, task_ids)


def main(argv: list[str] | None = None) -> int:
    """Backfill the tasks of a file through a deployed stack (--stack-name) or a local one."""
    parser = Parser(
        prog="devstack.backfill", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--family", required=True, help="the family whose record-info knows the tasks")
    parser.add_argument("--tasks", required=True, type=Path, help="a file of task ids, one a line")
    parser.add_argument("--stack-name", help="a deployed stack; without it, the local stack")
    parser.add_argument("--state-dir", help="the local stack's state directory (default .devstack/up)")
    args = parser.parse_args(argv)
    check_family(args.family)
    task_ids = _task_ids(args.tasks)
    if not task_ids:
        print(f"{args.tasks} names no task ids: nothing to do")
        return 0
    if args.stack_name:
        summary = _to_deployed(args.stack_name, args.family, task_ids)
    elif (stack := running_stack_or_none(state_dir(args.state_dir))) is not None:
        summary = _to_running(stack, args.family, task_ids)
    else:
        summary = _to_throwaway(args.family, task_ids)
    return 0 if summary.complete else 1


if __name__ == "__main__":
    sys.exit(run(main))
