"""SigV4 for kie2s3's IAM-authorised routes: signing a request and checking one, both with botocore's signer.

`POST /copies` and `GET /tasks/{taskId}` are IAM-authorised when deployed: API Gateway takes a
request signed with SigV4 for the service `execute-api` in the API's region. `sign` signs with
whatever credentials botocore resolved (a profile, SSO, a role, keys with or without a session
token). `check` is what `make up AUTH=iam` puts in front of those routes: it recomputes the
signature with botocore's own canonical request, string to sign and key derivation, against the
credentials the local stack issued (`issue`); IAM policy itself is not emulated.
"""

import configparser
import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

SERVICE: Final = "execute-api"
ALGORITHM: Final = "AWS4-HMAC-SHA256"
# API Gateway refuses a signature more than 5 minutes from its clock ("Signature expired: ...").
MAX_SKEW: Final = timedelta(minutes=5)
# `https://<api-id>.execute-api.<region>.amazonaws.com[.cn]`: a request is signed for the API's region.
_API_REGION: Final = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com")
_AUTHORIZATION: Final = re.compile(
    rf"{ALGORITHM} Credential=(?P<key>[^/,\s]+)/(?P<date>\d{{8}})/(?P<region>[^/,\s]+)/(?P<service>[^/,\s]+)"
    r"/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)
# The local stack's profiles in the credentials file it writes: keys alone, and keys with a token.
KEYS_PROFILE: Final = "kie2s3-local"
SESSION_PROFILE: Final = "kie2s3-local-session"

# Answers as API Gateway words them (403 each).
UNSIGNED: Final = "Forbidden: the request is not SigV4-signed (no Authorization header)"
MALFORMED: Final = "Forbidden: the Authorization header is not a SigV4 one (AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...)"
INVALID_TOKEN: Final = "The security token included in the request is invalid."
MISMATCH: Final = (
    "The request signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method."
)


def api_region(api_url: str, default: str) -> str:
    """The region a request to this API is signed for: the one in its execute-api host, else `default`."""
    found = _API_REGION.search(api_url)
    return found.group(1) if found else default


def sign(
    credentials: Any,
    region: str,
    method: str,
    url: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers of the request signed for `execute-api` (Authorization, X-Amz-Date, and
    X-Amz-Security-Token only when the credentials carry a token), the given ones included.

    `credentials`: botocore's (`session.get_credentials()`); refreshing ones are frozen first, so one
    request is signed with one key.
    """
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    frozen = (
        credentials.get_frozen_credentials()
        if hasattr(credentials, "get_frozen_credentials")
        else credentials
    )
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    SigV4Auth(frozen, SERVICE, region).add_auth(request)
    return dict(request.headers.items())


@dataclass(frozen=True)
class Issued:
    """Credentials the local stack issued: an access key, its secret, and a session token for temporary ones."""

    access_key: str
    secret_key: str
    token: str | None = None


def issue(*, temporary: bool) -> Issued:
    """New random credentials shaped as AWS's: `AKIA…` keys, or `ASIA…` keys with a session token."""
    upper = string.ascii_uppercase + string.digits
    key = ("ASIA" if temporary else "AKIA") + "".join(secrets.choice(upper) for _ in range(16))
    secret = secrets.token_urlsafe(30)[:40]
    return Issued(key, secret, secrets.token_urlsafe(96) if temporary else None)


def write_credentials_file(path: Path, keys: Issued, session: Issued) -> None:
    """An AWS shared credentials file with the two profiles (KEYS_PROFILE, SESSION_PROFILE), readable
    by its owner only: botocore, the AWS CLI and the SDKs resolve them as they resolve yours."""
    config = configparser.ConfigParser()
    for name, issued in ((KEYS_PROFILE, keys), (SESSION_PROFILE, session)):
        config[name] = {"aws_access_key_id": issued.access_key, "aws_secret_access_key": issued.secret_key}
        if issued.token:
            config[name]["aws_session_token"] = issued.token
    path.touch(mode=0o600)
    with path.open("w") as out:
        config.write(out)


def check(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    issued: Mapping[str, Issued],
    region: str,
    now: datetime | None = None,
) -> str | None:
    """None when the request is signed for `execute-api` in `region` by one of the `issued`
    credentials (by access key), within MAX_SKEW of `now`; else why it is refused (API Gateway's 403).

    `headers` as received (any case); `url` the scheme, the Host and the request target as sent.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    authorization = lowered.get("authorization", "")
    if not authorization:
        return UNSIGNED
    found = _AUTHORIZATION.fullmatch(authorization.strip())
    if found is None:
        return MALFORMED
    credential = issued.get(found["key"])
    if credential is None or lowered.get("x-amz-security-token") != credential.token:
        return INVALID_TOKEN  # an unknown key; a token missing, wrong, or given with keys that have none
    scope = _scope_error(found, lowered, region, now or datetime.now(UTC))
    if scope is not None:
        return scope
    signed = found["signed"].split(";")
    if "host" not in signed or any(name not in lowered for name in signed):
        return f"Forbidden: SignedHeaders must include host and name only headers the request carries ({found['signed']})"
    declared = lowered.get("x-amz-content-sha256")
    if declared is not None and declared != hashlib.sha256(body).hexdigest():
        return MISMATCH
    expected = _signature(credential, found, lowered, signed, method, url, body)
    return None if hmac.compare_digest(expected, found["signature"]) else MISMATCH


def _scope_error(
    found: "re.Match[str]", lowered: Mapping[str, str], region: str, now: datetime
) -> str | None:
    stamp = lowered.get("x-amz-date", "")
    try:
        when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "Forbidden: the signed request carries no valid X-Amz-Date (yyyymmddThhmmssZ)"
    if found["date"] != stamp[:8]:
        return f"Forbidden: the credential's date {found['date']} is not X-Amz-Date's ({stamp[:8]})"
    if found["service"] != SERVICE or found["region"] != region:
        return f"Forbidden: the credential should be scoped to {region}/{SERVICE}, not {found['region']}/{found['service']}"
    if when < now - MAX_SKEW:
        return f"Signature expired: {stamp} is now earlier than {(now - MAX_SKEW):%Y%m%dT%H%M%SZ}"
    if when > now + MAX_SKEW:
        return f"Signature not yet current: {stamp} is still later than {(now + MAX_SKEW):%Y%m%dT%H%M%SZ}"
    return None


def _signature(
    credential: Issued,
    found: "re.Match[str]",
    lowered: Mapping[str, str],
    signed: list[str],
    method: str,
    url: str,
    body: bytes,
) -> str:
    """The signature botocore computes for this request, its signed headers as the request names them."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.compat import HTTPHeaders
    from botocore.credentials import Credentials

    class _AsSigned(SigV4Auth):
        def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
            chosen = HTTPHeaders()
            for name in signed:
                chosen[name] = lowered[name]
            return chosen

    request = AWSRequest(
        method=method, url=url, data=body, headers={k: v for k, v in lowered.items() if k != "authorization"}
    )
    request.context["timestamp"] = lowered["x-amz-date"]
    auth = _AsSigned(
        Credentials(credential.access_key, credential.secret_key, credential.token),
        found["service"],
        found["region"],
    )
    canonical = auth.canonical_request(request)
    return str(auth.signature(auth.string_to_sign(request, canonical), request))
