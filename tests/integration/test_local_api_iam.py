"""`make up AUTH=iam`: the local API checks SigV4 on the template's IAM-authorised routes.

The local HTTP API serves the template's routes over loopback with the check `make up AUTH=iam`
installs (`devstack.serve.iam_check`: credentials issued into a shared credentials file, signatures
recomputed by botocore), in front of a stand-in function. Requests are made as users make them:
signed by `make call`'s sender with what botocore resolves from the stack's profiles, by the
Python snippet of docs/api.md, and by its `curl` lines.
"""

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.credentials import Credentials
from devstack.call import Answer, request, state_target
from devstack.cli import UserError
from devstack.local_api import LOCAL_AUTH_HEADER, LOCAL_IAM_NOTE, LocalHttpApi, template_routes
from devstack.serve import CREDENTIALS_FILE, iam_check
from devstack.sigv4 import INVALID_TOKEN, KEYS_PROFILE, MISMATCH, SESSION_PROFILE, issue
from devstack.template import REGION, load_template
from tests import docs

TASK = "7c1e0f3ab2d94c55a1e6f0b9d2c4a871"
COPIES = {"taskId": TASK, "family": "market"}
API_SECTION = "## Calling `POST /copies` and `GET /tasks` with your AWS credentials"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[LocalHttpApi, list[dict[str, Any]]]]:
    """The local API with AUTH=iam's check; the function records each event it is given."""
    events: list[dict[str, Any]] = []

    def function(event: dict[str, Any], name: str) -> Any:
        events.append(event)
        return {"statusCode": 200, "body": json.dumps({"route": event["routeKey"]})}

    server = LocalHttpApi(template_routes(load_template()), function, authorize=iam_check(tmp_path)).start()
    yield server, events
    server.stop()


def resolved(credentials_file: Path, profile: str) -> Any:
    """The credentials botocore resolves from a shared credentials file's profile, as for a user's own."""
    session = botocore.session.Session()
    session.set_config_variable("credentials_file", str(credentials_file))
    session.set_config_variable("profile", profile)
    return session.get_credentials()


def call(server: LocalHttpApi, method: str, route: str, credentials: Any, body: bytes = b"") -> Answer:
    return request(server.url, method, route, body=body, credentials=credentials, region=REGION)


@pytest.mark.parametrize("profile", [KEYS_PROFILE, SESSION_PROFILE])
def test_signed_requests_with_and_without_a_session_token_succeed(
    api: tuple[LocalHttpApi, list[dict[str, Any]]], tmp_path: Path, profile: str
) -> None:
    server, events = api
    credentials = resolved(tmp_path / CREDENTIALS_FILE, profile)
    assert bool(credentials.token) == (profile == SESSION_PROFILE)
    posted = call(server, "POST", "/copies", credentials, json.dumps(COPIES).encode())
    got = call(server, "GET", f"/tasks/{TASK}", credentials)
    assert (posted.status, json.loads(posted.body)) == (200, {"route": "POST /copies"})
    assert (got.status, json.loads(got.body)) == (200, {"route": "GET /tasks/{taskId}"})
    assert got.headers[LOCAL_AUTH_HEADER] == LOCAL_IAM_NOTE
    assert [json.loads(e["body"]) for e in events if e.get("body")] == [COPIES]


def test_an_unsigned_request_is_refused_before_the_function(
    api: tuple[LocalHttpApi, list[dict[str, Any]]],
) -> None:
    server, events = api
    answer = call(server, "GET", f"/tasks/{TASK}", None)
    assert answer.status == 403
    assert "not SigV4-signed" in json.loads(answer.body)["message"]
    assert events == []


def test_a_wrongly_signed_request_is_refused(
    api: tuple[LocalHttpApi, list[dict[str, Any]]], tmp_path: Path
) -> None:
    server, events = api
    credentials = resolved(tmp_path / CREDENTIALS_FILE, KEYS_PROFILE).get_frozen_credentials()
    wrong_secret = type(credentials)(credentials.access_key, "x" * 40, None)
    answer = call(server, "GET", f"/tasks/{TASK}", wrong_secret)
    assert (answer.status, json.loads(answer.body)["message"]) == (403, MISMATCH)
    assert events == []


def test_keys_the_stack_did_not_issue_are_refused(api: tuple[LocalHttpApi, list[dict[str, Any]]]) -> None:
    server, events = api
    stranger = issue(temporary=True)
    credentials = Credentials(stranger.access_key, stranger.secret_key, stranger.token)
    answer = call(server, "POST", "/copies", credentials, json.dumps(COPIES).encode())
    assert (answer.status, json.loads(answer.body)["message"]) == (403, INVALID_TOKEN)
    assert events == []


def test_an_expired_signature_is_refused(
    api: tuple[LocalHttpApi, list[dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, events = api
    credentials = resolved(tmp_path / CREDENTIALS_FILE, SESSION_PROFILE)
    ten_minutes_ago = (datetime.now(UTC) - timedelta(minutes=10)).replace(tzinfo=None)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: ten_minutes_ago)
    answer = call(server, "GET", f"/tasks/{TASK}", credentials)
    assert answer.status == 403
    assert json.loads(answer.body)["message"].startswith("Signature expired")
    assert events == []


def test_the_callback_route_is_not_iam_authorised(api: tuple[LocalHttpApi, list[dict[str, Any]]]) -> None:
    server, events = api
    answer = call(server, "POST", "/callbacks/kie", None, b"{}")
    assert answer.status == 200
    assert LOCAL_AUTH_HEADER not in answer.headers
    assert len(events) == 1


# ---------------------------------------------------------------------------- the docs' ways, as written


def api_section_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", docs.section("docs/api.md", API_SECTION), flags=re.S)


def profile_values(credentials_file: Path, profile: str) -> dict[str, str]:
    frozen = resolved(credentials_file, profile).get_frozen_credentials()
    values = {"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key}
    return {**values, "AWS_SESSION_TOKEN": frozen.token} if frozen.token else values


def shell_environment(**values: str) -> dict[str, str]:
    """The environment of a user's shell, none of the machine's own AWS settings in it."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**kept, "AWS_CONFIG_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true", **values}


@pytest.mark.parametrize("profile", [KEYS_PROFILE, SESSION_PROFILE])
def test_readme_python_snippet_works_as_written(
    api: tuple[LocalHttpApi, list[dict[str, Any]]], tmp_path: Path, profile: str
) -> None:
    server, events = api
    [snippet] = api_section_blocks("python")
    done = subprocess.run(
        [sys.executable, "-c", snippet],
        env=shell_environment(
            API=server.url,
            AWS_DEFAULT_REGION=REGION,
            AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / CREDENTIALS_FILE),
            AWS_PROFILE=profile,
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "(200, {'route': 'POST /copies'})",
        "(200, {'route': 'GET /tasks/{taskId}'})",
    ]
    assert len(events) == 2


def readme_curl_signing_lines() -> str:
    """The docs' lines that build curl's SigV4 options (SIGV4=..., the session token's if)."""
    [_, curl_block, *_] = api_section_blocks("bash")
    lines = [line for line in curl_block.splitlines() if line.startswith(("SIGV4=", "SIGV4+=", "if "))]
    assert len(lines) == 2, curl_block
    return "\n".join(lines)


@pytest.mark.parametrize("profile", [KEYS_PROFILE, SESSION_PROFILE])
def test_readme_curl_lines_work_with_and_without_a_session_token(
    api: tuple[LocalHttpApi, list[dict[str, Any]]], tmp_path: Path, profile: str
) -> None:
    server, events = api
    script = f'{readme_curl_signing_lines()}\ncurl -sS -o /dev/stdout -w " %{{http_code}}" "${{SIGV4[@]}}" "$API/tasks/{TASK}"'
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=shell_environment(
            API=server.url, REGION=REGION, **profile_values(tmp_path / CREDENTIALS_FILE, profile)
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(" 200"), done.stdout
    assert len(events) == 1


def test_the_old_curl_line_with_an_empty_token_header_is_refused(
    api: tuple[LocalHttpApi, list[dict[str, Any]]], tmp_path: Path
) -> None:
    # Issue 22: `-H "x-amz-security-token: $AWS_SESSION_TOKEN"` always, for keys that have no token.
    server, events = api
    script = (
        'SIGV4=(--aws-sigv4 "aws:amz:$REGION:execute-api" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"'
        ' -H "x-amz-security-token: ${AWS_SESSION_TOKEN:-}")\n'
        f'curl -sS -w " %{{http_code}}" "${{SIGV4[@]}}" "$API/tasks/{TASK}"'
    )
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=shell_environment(
            API=server.url, REGION=REGION, **profile_values(tmp_path / CREDENTIALS_FILE, KEYS_PROFILE)
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.endswith(" 403"), done.stdout + done.stderr
    assert events == []


@pytest.mark.parametrize("profile", ["", SESSION_PROFILE])
def test_make_call_signs_with_the_local_stacks_profiles(
    api: tuple[LocalHttpApi, list[dict[str, Any]]], tmp_path: Path, profile: str
) -> None:
    server, events = api
    state = {"apiUrl": server.url, "credentialsFile": str(tmp_path / CREDENTIALS_FILE)}
    url, credentials, region = state_target(state, profile)
    answer = request(url, "GET", f"/tasks/{TASK}", credentials=credentials, region=region)
    assert (answer.status, bool(credentials.token)) == (200, profile == SESSION_PROFILE)
    assert len(events) == 1


def test_make_call_refuses_a_profile_the_stack_did_not_write(tmp_path: Path) -> None:
    iam_check(tmp_path)
    state = {"apiUrl": "http://127.0.0.1:9", "credentialsFile": str(tmp_path / CREDENTIALS_FILE)}
    with pytest.raises(UserError, match="PROFILE=mine"):
        state_target(state, "mine")
