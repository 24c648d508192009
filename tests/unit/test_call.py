"""`make call` and `make up AUTH=iam`'s credentials: what they read, write and print (no network)."""

import configparser
import stat
from pathlib import Path

import pytest
from devstack.call import _body, main, state_target
from devstack.cli import UserError
from devstack.running import StackState
from devstack.serve import CREDENTIALS_FILE, iam_check
from devstack.sigv4 import KEYS_PROFILE, SESSION_PROFILE
from devstack.up import banner

STATE = {
    "stackId": "s",
    "apiUrl": "http://127.0.0.1:3000",
    "bucket": "b",
    "awsUrl": "http://127.0.0.1:5000",
    "kieUrl": "http://127.0.0.1:5001",
    "kieApiKey": "k",
    "hmacKey": "h",
    "mode": "queue",
}


def test_iam_check_writes_two_profiles_readable_by_their_owner_only(tmp_path: Path) -> None:
    iam_check(tmp_path)
    path = tmp_path / CREDENTIALS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    profiles = configparser.ConfigParser()
    profiles.read(path)
    assert profiles.sections() == [KEYS_PROFILE, SESSION_PROFILE]
    assert profiles[KEYS_PROFILE]["aws_access_key_id"].startswith("AKIA")
    assert "aws_session_token" not in profiles[KEYS_PROFILE]
    assert profiles[SESSION_PROFILE]["aws_access_key_id"].startswith("ASIA")
    assert profiles[SESSION_PROFILE]["aws_session_token"]


def test_iam_check_refuses_what_the_profiles_did_not_sign(tmp_path: Path) -> None:
    authorize = iam_check(tmp_path)
    assert "not SigV4-signed" in authorize(
        "GET", "http://127.0.0.1:3000/tasks/t", {"Host": "127.0.0.1:3000"}, b""
    )


def test_banner_names_the_profiles_with_auth_iam(tmp_path: Path) -> None:
    unsigned = banner(StackState(tmp_path, STATE))
    assert "unsigned locally" in unsigned
    signed = banner(StackState(tmp_path, {**STATE, "credentialsFile": str(tmp_path / CREDENTIALS_FILE)}))
    assert "unsigned locally" not in signed
    assert f"{KEYS_PROFILE} (keys)" in signed
    assert SESSION_PROFILE in signed


def test_a_local_stack_without_auth_iam_takes_unsigned_requests() -> None:
    assert state_target(STATE) == ("http://127.0.0.1:3000", None, "us-east-1")
    with pytest.raises(UserError, match="AUTH=iam"):
        state_target(STATE, SESSION_PROFILE)


def test_body_is_json_or_a_file_of_json(tmp_path: Path) -> None:
    assert _body("") == b""
    assert _body('{"taskId": "t"}') == b'{"taskId": "t"}'
    (tmp_path / "copies.json").write_text('{"taskIds": ["a"]}')
    assert _body(f"@{tmp_path / 'copies.json'}") == b'{"taskIds": ["a"]}'
    with pytest.raises(UserError, match="BODY is not JSON"):
        _body("{taskId: t}")
    with pytest.raises(UserError, match="No such file"):
        _body(f"@{tmp_path / 'missing.json'}")


def test_route_must_be_a_path() -> None:
    with pytest.raises(UserError, match="must start with /"):
        main(["tasks/t"])
