"""What every devstack command shares: a mistake ends with one line that says what to do, never a traceback.

`python -m devstack.cli aws --for "make deploy"` checks, before anything is built, that AWS
credentials (and a region) can be found, as `make deploy` and `make e2e STACK_NAME=…` need them.
"""

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn


class UserError(Exception):
    """A mistake the person running the command can fix; the message is one line saying how."""

    def __init__(self, message: str, *, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (argparse prints the usage first, then the error)."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (python -m {self.prog} --help lists the options)")


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a command's main: a UserError prints `error: <message>` on stderr and exits non-zero."""
    try:
        return main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): nothing more to tell it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail
        return 1


def aws_session(purpose: str, *, need_region: bool = True, region: str | None = None) -> Any:
    """A boto3 session with credentials (and a region, unless `region` names it) from the default chain,
    or a UserError saying what is missing. Never reaches AWS: finding credentials is not checking them."""
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        session = boto3.Session(region_name=region)
        credentials = session.get_credentials()
    except BotoCoreError as exc:  # a profile that does not exist, an unreadable config file
        raise UserError(f"{purpose}: AWS configuration unusable: {exc}") from exc
    if need_region and not session.region_name:
        raise UserError(
            f"{purpose} needs an AWS region: set AWS_DEFAULT_REGION (or a region in your AWS profile)"
        )
    if credentials is None:
        raise UserError(
            f"{purpose} needs AWS credentials: none found (set AWS_PROFILE, run `aws configure` or "
            "`aws sso login`, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        )
    return session


def _main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(prog="devstack.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    aws = commands.add_parser("aws", help="check that AWS credentials and a region can be found")
    aws.add_argument(
        "--for", dest="purpose", default="this command", help="what needs them (for the message)"
    )
    aws.add_argument("--no-region", action="store_true", help="a region is not needed")
    args = parser.parse_args(argv)
    aws_session(args.purpose, need_region=not args.no_region)
    return 0


if __name__ == "__main__":
    sys.exit(run(_main))
