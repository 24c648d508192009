"""schemathesis over HTTP, every check, against a local API of the module's own under `AUTH=iam`.

The API is `make up AUTH=iam`'s (its entry point, in a state directory of this module's own, on free
ports): the gateway checks SigV4 on `/copies` and `/tasks`, the function HMAC on callbacks. Cases are
authenticated as their callers do it, through schemathesis auth hooks, so that its `ignored_auth`
check can take the credentials away again and see the refusal:
- the hooks mark a case's credentials (SIGN_ME), and the session, once the request's bytes are
  final, turns the marks into signatures; a request whose marks were removed or replaced goes as it is;
- callbacks are signed as kie.ai signs them: `X-Webhook-Timestamp` and `X-Webhook-Signature`,
  base64(HMAC-SHA256(key, "<taskId>.<timestamp>")) for the task id the body names;
- `/copies` and `/tasks` are signed by the project's SigV4 signer (`devstack.sigv4.sign`) with the
  stack's credentials.

Every operation runs the examples, coverage and fuzzing phases (coverage includes undeclared methods
such as TRACE), valid and invalid data, MAX_EXAMPLES fuzzed per operation, derandomized, with every
check schemathesis has. Where a check expects what API Gateway itself never answers, it takes the
gateway's answer as the gateway gives it, and nothing else: 404 `Not Found` for an undeclared method
(not 405), 403 from the IAM authorizer for a request without `Authorization` (not 401); and invalid
data over the 256 KiB body limit may be refused 413, as openapi.json documents. The closing test
checks the counts: every operation tested, and no 5xx answer anywhere.
"""

import base64
import hashlib
import hmac
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
import requests
import schemathesis
from devstack.openapi import OPENAPI_PATH
from devstack.sigv4 import KEYS_PROFILE, sign
from devstack.template import REGION
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.specs.openapi.checks import missing_required_header, unsupported_method
from tests.e2e.conftest import own_local_stack, stack_name

from kie2s3.errors import BadRequestError
from kie2s3.families import task_id_of

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 40
# The hooks' mark: the session signs a request whose Authorization (or X-Webhook-Signature) is this.
SIGN_ME = "SigV4 (signed by the test session once the request is final)"

SCHEMA = schemathesis.openapi.from_path(OPENAPI_PATH)
load_all_checks()
GATEWAY_NOT_FOUND = {"message": "Not Found"}


def _gateway_answer(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def unsupported_method_as_api_gateway(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis's `unsupported_method`, but for the answer API Gateway's HTTP API gives a method no
    route declares: 404 `{"message": "Not Found"}`, as for an unknown path (it never answers 405)."""
    if response.status_code == 404 and _gateway_answer(response) == GATEWAY_NOT_FOUND:
        return None
    return unsupported_method(ctx, response, case)


def missing_required_header_as_api_gateway(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis's `missing_required_header`, but for the answer of API Gateway's IAM authorizer to
    a request without `Authorization`: 403 (schemathesis expects 401 of a missing Authorization)."""
    unsigned = "Authorization" not in response.request.headers
    if (
        response.status_code == 403
        and unsigned
        and {"sigv4": []} in (case.operation.definition.raw.get("security") or [])
    ):
        return None
    return missing_required_header(ctx, response, case)


# A body over 256 KiB is refused 413 before it is read (openapi.json documents it): invalid data
# that size (500 URLs of 4 KiB) is refused so.
_NEGATIVE = SCHEMA.config.checks.negative_data_rejection
_NEGATIVE.expected_statuses = [*_NEGATIVE.expected_statuses, "413"]
# Every check schemathesis has, two of them taking API Gateway's own answers as it gives them.
ADAPTED = {
    unsupported_method: unsupported_method_as_api_gateway,
    missing_required_header: missing_required_header_as_api_gateway,
}
ALL_CHECKS = [ADAPTED.get(check, check) for check in CHECKS.get_all()]
OPERATIONS = sorted(f"{op.ok().method.upper()} {op.ok().path}" for op in SCHEMA.get_all_operations())

# Cases sent and statuses answered, per operation; read by the closing test.
SENT: Counter[str] = Counter()
STATUSES: dict[str, Counter[int]] = {}


@SCHEMA.auth(refresh_interval=None, retry_on=[]).apply_to(path="/callbacks/kie")
class KieSignature:
    """Marks a callback for kie.ai's webhook headers (SIGN_ME), which the session computes."""

    def get(self, case: Any, ctx: Any) -> str:
        return SIGN_ME

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "X-Webhook-Timestamp": data, "X-Webhook-Signature": data}


@SCHEMA.auth(refresh_interval=None, retry_on=[]).skip_for(path="/callbacks/kie")
class IamSignature:
    """Marks a request to `/copies` or `/tasks` for a SigV4 signature (SIGN_ME), which the session computes."""

    def get(self, case: Any, ctx: Any) -> str:
        return SIGN_ME

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": data}


class _SignedAtSending(requests.auth.AuthBase):
    """Turns the hooks' marks into signatures of the request as it goes on the wire: SigV4 with the
    stack's credentials; kie.ai's webhook HMAC for the task id the body names (none when it names
    none: kie.ai signs only a task's callback)."""

    def __init__(self, credentials: Any, hmac_key: str) -> None:
        self.credentials = credentials
        self.hmac_key = hmac_key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        if request.headers.get("Authorization") == SIGN_ME:
            del request.headers["Authorization"]
            signed = sign(
                self.credentials, REGION, str(request.method), str(request.url), body, dict(request.headers)
            )
            request.headers.update(signed)
        if request.headers.get("X-Webhook-Signature") == SIGN_ME:
            del request.headers["X-Webhook-Signature"]
            del request.headers["X-Webhook-Timestamp"]
            request.headers.update(self._kie_headers(body))
        return request

    def _kie_headers(self, body: bytes) -> dict[str, str]:
        try:
            parsed = json.loads(body)
            task_id = task_id_of(parsed) if isinstance(parsed, dict) else None
        except (ValueError, BadRequestError, RecursionError):
            task_id = None
        if task_id is None:
            return {}
        timestamp = str(int(time.time()))
        mac = hmac.new(self.hmac_key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
        return {"X-Webhook-Timestamp": timestamp, "X-Webhook-Signature": base64.b64encode(mac).decode()}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A local stack of this module's own under AUTH=iam; its state (apiUrl, hmacKey, credentialsFile)."""
    if stack_name():
        pytest.skip("runs against a local stack of its own (AUTH=iam), not a deployed one")
    with own_local_stack(tmp_path_factory.mktemp("conformance") / "state", "--auth", "iam") as state:
        yield state


@pytest.fixture(scope="module")
def session(api: dict[str, Any]) -> Iterator[requests.Session]:
    """A requests session that signs what the IAM hook marked, with the stack's credentials."""
    botocore_session = botocore.session.Session()
    botocore_session.set_config_variable("credentials_file", str(api["credentialsFile"]))
    botocore_session.set_config_variable("profile", KEYS_PROFILE)
    with requests.Session() as signing:
        signing.auth = _SignedAtSending(botocore_session.get_credentials(), str(api["hmacKey"]))
        yield signing


@SCHEMA.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_openapi(case: Any, api: dict[str, Any], session: requests.Session) -> None:
    operation = f"{case.operation.method.upper()} {case.operation.path}"
    response = case.call_and_validate(base_url=api["apiUrl"], session=session, checks=ALL_CHECKS, timeout=35)
    SENT[operation] += 1
    STATUSES.setdefault(operation, Counter())[response.status_code] += 1


def test_every_operation_was_tested_and_none_answered_5xx(api: dict[str, Any], capsys: Any) -> None:
    assert sorted(SENT) == OPERATIONS, SENT
    server_errors = {op: [s for s in statuses if s >= 500] for op, statuses in STATUSES.items()}
    assert all(not errors for errors in server_errors.values()), server_errors
    with capsys.disabled():
        print(
            f"\nschemathesis: {len(OPERATIONS)} operations, at most {MAX_EXAMPLES} fuzzed examples per operation (with the examples and coverage phases' cases),"
            f" {sum(SENT.values())} cases sent: "
            + "; ".join(f"{op} {SENT[op]} {dict(sorted(STATUSES[op].items()))}" for op in OPERATIONS)
        )
