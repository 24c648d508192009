"""`make sam-event EVENT=events/<file>.json [STACK_NAME=<stack>]`: the files `sam local invoke` takes.

    python -m devstack.sam_invoke EVENT [--stack-name STACK [--region R]] [--out DIR] [--state-dir D]

Writes DIR/event.json (default .devstack/sam/) and DIR/env.json, then prints the `sam local invoke`
command that uses them. The event is the sample made ready for the stack: a callback signed afresh
with the stack's webhook HMAC key (valid for WEBHOOK_TOLERANCE_SECONDS), a queue sample's records
coming from the stack's queue of that function. env.json gives the function the event goes to
every variable the template gives it, with the stack's values: a running local stack's (`make up`)
as it resolved them, or a deployed stack's as Lambda holds them (read with your AWS credentials, as
is the HMAC key, which is used to sign and written nowhere).

SAM applies an env-vars file's values to the variables the template declares only; the local
stack's AWS emulator is reached through AWS_ENDPOINT_URL, which the template does not declare, so
against the local stack the function in SAM's container reaches AWS itself: `make invoke` is the
local stack's way to run an event, and this file pair is for a deployed stack's resources (or for
reading what the function would be given).
"""

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from devstack.callbacks import callback_body, load_event, resign
from devstack.cli import Parser, UserError, run
from devstack.invoke import check_event, function_for, sqs_function_for
from devstack.running import REPO_ROOT, running_stack, state_dir
from kie2s3.events import event_kind

DEFAULT_OUT: Final = REPO_ROOT / ".devstack" / "sam"
# The function whose environment names the stack's queues (every function has the Globals' variables).
ROUTING_FUNCTION: Final = "ApiFunction"


@dataclass(frozen=True)
class Target:
    """Where the event goes: the function (logical id), its environment, the webhook HMAC key, and the
    variables its stack gives it that the template does not declare (SAM passes none of them)."""

    function: str
    env: dict[str, str]
    hmac_key: str
    undeclared: tuple[str, ...] = ()


def template_variables(template: Mapping[str, Any], function: str) -> list[str]:
    """The names of the variables the template gives a function: Globals.Function's and its own."""
    global_function = (template.get("Globals") or {}).get("Function") or {}
    resource = (template.get("Resources") or {}).get(function) or {}
    names: dict[str, None] = {}
    for source in (global_function, resource.get("Properties") or {}):
        names.update(dict.fromkeys((source.get("Environment") or {}).get("Variables") or {}))
    return list(names)


def local_target(template: Mapping[str, Any], event: dict[str, Any], directory: Path) -> Target:
    """The running local stack's function for the event, with the environment it resolved."""
    stack = running_stack(directory)
    function = function_for(template, event, stack.env)
    declared = template_variables(template, function)
    env = {name: stack.env[name] for name in declared if name in stack.env}
    return Target(function, env, stack.hmac_key, tuple(name for name in stack.env if name not in declared))


def deployed_target(
    cloudformation: Any,
    lambda_client: Any,
    secrets: Any,
    stack_name: str,
    template: Mapping[str, Any],
    event: dict[str, Any],
) -> Target:
    """A deployed stack's function for the event, with its environment as Lambda holds it."""
    resources = cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources if r.get("PhysicalResourceId")
    }

    def environment(function: str) -> dict[str, str]:
        configuration = lambda_client.get_function_configuration(FunctionName=physical[function])
        return dict((configuration.get("Environment") or {}).get("Variables") or {})

    function = function_for(template, event, environment(ROUTING_FUNCTION))
    if function not in physical:
        raise UserError(f"stack {stack_name} has no {function} (a condition of the template left it out)")
    env = environment(function)
    key = secrets.get_secret_value(SecretId=env["KIE_WEBHOOK_HMAC_SECRET"])["SecretString"]
    return Target(function, env, str(key))


def ready_event(
    event: dict[str, Any], name: str, target: Target, template: Mapping[str, Any]
) -> dict[str, Any]:
    """The event as the target's function would be given it: a callback signed afresh with the
    target's key, queue records coming from the target's queue of that function."""
    if str(event.get("rawPath", "")).startswith("/callbacks/"):
        from kie2s3.errors import BadRequestError
        from kie2s3.families import task_id_of

        try:
            return resign(event, task_id_of(callback_body(event, name)), target.hmac_key)
        except BadRequestError:
            return event  # no one task id to sign: the function answers 400, as it should
    if event_kind(event) == "sqs":
        _, variable = sqs_function_for(template, event, target.env)
        region = str(event["Records"][0]["eventSourceARN"]).split(":")[3]
        arn = queue_arn(target.env[variable], region)
        return {**event, "Records": [{**record, "eventSourceARN": arn} for record in event["Records"]]}
    return event


def queue_arn(queue_url: str, default_region: str) -> str:
    """An SQS queue's ARN from its URL: `https://sqs.<region>.amazonaws.com/<account>/<name>`, or a
    local emulator's `http://host:port/<account>/<name>` (in `default_region`)."""
    host, account, name = queue_url.split("/")[2:5]
    parts = host.split(".")
    region = parts[1] if parts[0] == "sqs" and len(parts) > 3 else default_region
    return f"arn:aws:sqs:{region}:{account}:{name}"


def write_files(event: dict[str, Any], target: Target, out: Path) -> tuple[Path, Path]:
    """DIR/event.json and DIR/env.json ({function: {variable: value}}, SAM's --env-vars format)."""
    out.mkdir(parents=True, exist_ok=True)
    event_file, env_file = out / "event.json", out / "env.json"
    event_file.write_text(json.dumps(event, indent=2) + "\n")
    env_file.write_text(json.dumps({target.function: target.env}, indent=2) + "\n")
    return event_file, env_file


def _deployed(args: Any, template: Mapping[str, Any], event: dict[str, Any]) -> Target:
    from botocore.exceptions import BotoCoreError, ClientError

    from devstack.cli import aws_session

    session = aws_session(f"make sam-event STACK_NAME={args.stack_name}", region=args.region)
    try:
        return deployed_target(
            session.client("cloudformation"),
            session.client("lambda"),
            session.client("secretsmanager"),
            args.stack_name,
            template,
            event,
        )
    except (BotoCoreError, ClientError) as exc:
        raise UserError(f"stack {args.stack_name} in {session.region_name}: {exc}", status=1) from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Write the event and env-vars files; print the command."""
    from devstack.template import load_template

    parser = Parser(prog="devstack.sam_invoke", description=__doc__)
    parser.add_argument("event", help="an events/ file, e.g. events/callback-market-success.json")
    parser.add_argument("--stack-name", help="a deployed stack (default: the running local stack)")
    parser.add_argument("--region", help="the deployed stack's region (default: the AWS configuration's)")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="where to write (default .devstack/sam)"
    )
    parser.add_argument("--state-dir", help="the local stack's state directory (default .devstack/up)")
    args = parser.parse_args(argv)
    event = load_event(args.event)
    if str(event.get("rawPath", "")).startswith("/callbacks/"):
        callback_body(event, args.event)
    check_event(event, args.event)
    template = load_template()
    if args.stack_name:
        target = _deployed(args, template, event)
    else:
        target = local_target(template, event, state_dir(args.state_dir))
    event_file, env_file = write_files(ready_event(event, args.event, target, template), target, args.out)
    where = f"stack {args.stack_name}" if args.stack_name else "the running local stack"
    print(f"wrote {event_file} and {env_file} for {target.function} of {where}")
    print(f"  sam local invoke {target.function} --event {event_file} --env-vars {env_file}")
    if str(event.get("rawPath", "")).startswith("/callbacks/"):
        tolerance = target.env.get("WEBHOOK_TOLERANCE_SECONDS", "the tolerance")
        print(f"  the callback's signature is fresh for {tolerance} s: write it again after that")
    if target.undeclared:
        print(local_stack_limit(target.undeclared, args.event))
    return 0


def local_stack_limit(undeclared: Sequence[str], event: str) -> str:
    """Why `sam local invoke` with these files does not run against the local stack."""
    return (
        f"  note: SAM gives the function only the variables the template declares, so not the local "
        f"stack's {', '.join(undeclared)}: in SAM's container the function calls AWS itself, with "
        "your own AWS credentials, not the local stack's emulator (and 127.0.0.1 there is the "
        f"container's own). To run the event against the local stack: make invoke EVENT={event}"
    )


if __name__ == "__main__":
    sys.exit(run(main))
