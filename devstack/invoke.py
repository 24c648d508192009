"""`make invoke EVENT=events/<file>.json`: the docker-less stand-in for `sam local invoke`."""

import argparse
import contextlib
import json
import sys

from devstack.callbacks import load_event, resign, serve_result_files
from devstack.lambda_runtime import LambdaContext, invoke
from devstack.stack import WEBHOOK_HMAC_KEY, local_stack
from kie2s3.errors import BadRequestError
from kie2s3.families import task_id_of

_URL_PREFIXES = ("https://", "http://")


def _urls_in(value: object) -> list[str]:
    """Every URL string inside a JSON value, JSON-in-a-string included (the emulator serves each one)."""
    if isinstance(value, str):
        if value.startswith(_URL_PREFIXES):
            return [value]
        if value[:1] in "{[":
            with contextlib.suppress(ValueError):
                return _urls_in(json.loads(value))
        return []
    if isinstance(value, dict):
        return [u for v in value.values() for u in _urls_in(v)]
    if isinstance(value, list):
        return [u for v in value for u in _urls_in(v)]
    return []


def main(argv: list[str] | None = None) -> int:
    """Run one event through `app.lambda_handler` with the template's environment on the local stack."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("event", help="an events/ file")
    parser.add_argument("--mode", choices=("inline", "queue"), default="inline", help="CopyMode for this run")
    parser.add_argument("--no-resign", action="store_true", help="keep the event's own signature headers")
    args = parser.parse_args(argv)
    event = load_event(args.event)
    with local_stack(copy_mode=args.mode) as stack:
        if "body" in event and event.get("rawPath", "").startswith("/callbacks/"):
            body = json.loads(event["body"])
            serve_result_files(stack.emulator, _urls_in(body))
            with contextlib.suppress(BadRequestError):  # the handler itself answers 400 for these
                if not args.no_resign:
                    event = resign(event, task_id_of(body), WEBHOOK_HMAC_KEY)
        with stack.function():
            result = invoke(event, LambdaContext())
            if args.mode == "queue":
                stack.poller().drain()
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
