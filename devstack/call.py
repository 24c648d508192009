"""`make call`: one request to kie2s3's API, SigV4-signed with the credentials your AWS configuration resolves.

    make call ROUTE=/tasks/<taskId> [STACK_NAME=<stack>] [REGION=<region>]
    make call ROUTE=/copies BODY='{"taskId": "...", "family": "market"}' [STACK_NAME=<stack>]

With STACK_NAME, the request goes to that deployed stack's `ApiUrl` output, signed for `execute-api`
in the API's region with whatever botocore resolves: AWS_PROFILE, an SSO login, a role, keys in the
environment with or without a session token. Without it, it goes to the running local stack
(`make up`); with `make up AUTH=iam`, signed with the credentials that stack issued (its profile
`kie2s3-local`, or PROFILE=kie2s3-local-session for keys with a session token). It prints the
status line on stderr and the answer's body on stdout; the exit status is 1 for a 4xx or 5xx answer.
"""

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ProfileNotFound

from devstack.cli import Parser, UserError, run
from devstack.sigv4 import KEYS_PROFILE, api_region, sign

# The API function's timeout (template.yaml), and a little for the gateway.
TIMEOUT_SECONDS = 35


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, headers (lower-case names), body."""

    status: int
    headers: dict[str, str]
    body: bytes


def request(
    api_url: str,
    method: str,
    route: str,
    *,
    body: bytes = b"",
    credentials: Any = None,
    region: str = "",
    http: Any = None,
) -> Answer:
    """`method <api_url><route>`, SigV4-signed (`execute-api`, `region`) when `credentials` are given.

    botocore's HTTP client sends it (`http`: any object with botocore's `send(prepared request)`);
    its errors (no connection, a timeout) are raised as botocore's HTTPClientError.
    """
    from botocore.awsrequest import AWSRequest
    from botocore.httpsession import URLLib3Session

    url = f"{api_url.rstrip('/')}{route}"
    headers = {"content-type": "application/json"} if body else {}
    if credentials is not None:
        headers = sign(credentials, region, method, url, body, headers)
    prepared = AWSRequest(method=method, url=url, data=body, headers=headers).prepare()
    response = (http or URLLib3Session(timeout=TIMEOUT_SECONDS)).send(prepared)
    return Answer(
        int(response.status_code),
        {str(k).lower(): str(v) for k, v in (getattr(response, "headers", None) or {}).items()},
        bytes(response.content),
    )


def local_target(directory: Path | None = None, profile: str = "") -> tuple[str, Any, str]:
    """The running local stack's API URL, the credentials to sign with (None: it takes unsigned
    requests) and its region (see `state_target`)."""
    from devstack.running import running_stack

    return state_target(running_stack(directory).data, profile)


def state_target(state: Mapping[str, Any], profile: str = "") -> tuple[str, Any, str]:
    """A local stack's API URL, credentials and region from its recorded state. With AUTH=iam, the
    credentials botocore resolves from the profile (default kie2s3-local) of the stack's credentials file."""
    import botocore.session

    from devstack.template import REGION

    credentials_file = state.get("credentialsFile")
    if not credentials_file:
        if profile:
            raise UserError("PROFILE= is for a local stack started with AUTH=iam (make up AUTH=iam)")
        return str(state["apiUrl"]), None, REGION
    session = botocore.session.Session()
    session.set_config_variable("credentials_file", str(credentials_file))
    session.set_config_variable("profile", profile or KEYS_PROFILE)
    try:
        credentials = session.get_credentials()
    except ProfileNotFound as exc:
        raise UserError(
            f"PROFILE={profile}: {credentials_file} has kie2s3-local and kie2s3-local-session"
        ) from exc
    return str(state["apiUrl"]), credentials, REGION


def deployed_target(stack_name: str, region: str | None = None) -> tuple[str, Any, str]:
    """A deployed stack's `ApiUrl` output, the credentials the AWS configuration resolves, the API's region."""
    from botocore.exceptions import BotoCoreError, ClientError

    from devstack.backfill import api_url_of
    from devstack.cli import aws_session

    session = aws_session(f"make call STACK_NAME={stack_name}", region=region)
    try:
        api_url = api_url_of(session.client("cloudformation"), stack_name)
    except (BotoCoreError, ClientError, KeyError) as exc:
        raise UserError(f"cannot read the ApiUrl output of stack {stack_name!r}: {exc}", status=1) from exc
    return api_url, session.get_credentials(), api_region(api_url, str(session.region_name))


def _body(text: str) -> bytes:
    """BODY: JSON as given, or @file; checked to be JSON, so a typo is told here rather than as a 400."""
    if not text:
        return b""
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as exc:
            raise UserError(f"BODY={text}: {exc.strerror}") from exc
    try:
        json.loads(text)
    except ValueError as exc:
        raise UserError(f"BODY is not JSON: {exc}") from exc
    return text.encode()


def main(argv: Sequence[str] | None = None) -> int:
    """Send one request and print its answer."""
    parser = Parser(prog="devstack.call", description=__doc__)
    parser.add_argument("route", help="/copies or /tasks/<taskId>")
    parser.add_argument("--method", default="", help="default: POST with a body, else GET")
    parser.add_argument("--body", default="", help="JSON, or @file")
    parser.add_argument("--stack-name", default="", help="a deployed stack (default: the local stack)")
    parser.add_argument("--region", default=None, help="the region of the deployed stack")
    parser.add_argument("--profile", default="", help="local AUTH=iam stack: kie2s3-local-session")
    args = parser.parse_args(argv)
    if not args.route.startswith("/"):
        raise UserError(f"ROUTE={args.route} must start with / (/copies, /tasks/<taskId>)")
    body = _body(args.body)
    method = (args.method or ("POST" if body else "GET")).upper()
    if args.stack_name:
        api_url, credentials, region = deployed_target(args.stack_name, args.region)
    else:
        api_url, credentials, region = local_target(profile=args.profile)
    from botocore.exceptions import HTTPClientError

    try:
        answer = request(api_url, method, args.route, body=body, credentials=credentials, region=region)
    except HTTPClientError as exc:
        raise UserError(f"{method} {api_url}{args.route}: no answer ({exc})", status=1) from exc
    print(f"{method} {api_url}{args.route} -> HTTP {answer.status}", file=sys.stderr)
    _print_body(answer)
    return 0 if answer.status < 400 else 1


def _print_body(answer: Answer) -> None:
    try:
        print(json.dumps(json.loads(answer.body), indent=2))
    except ValueError:
        print(answer.body.decode(errors="replace"))


if __name__ == "__main__":
    sys.exit(run(main))
