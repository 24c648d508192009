"""The local stack's commands read a stack's state directory: here, one in a temp folder whose
"supervisor" is a process carrying the stack's id, as `make up` leaves it."""

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from devstack import up
from devstack.running import MARKER_ENV, StackState, is_ours, read_state, write_state

STACK_ID = "0123456789abcdef0123456789abcdef"


def state_data(supervisor: int, **more: object) -> dict[str, object]:
    """A ready stack's state.json, as devstack.serve writes it."""
    return {
        "stackId": STACK_ID,
        "ready": True,
        "pids": {"supervisor": supervisor},
        "apiUrl": "http://127.0.0.1:3000",
        "bucket": "kie2s3-local-archivebucket",
        "awsUrl": "http://127.0.0.1:5000",
        "kieUrl": "http://127.0.0.1:5001",
        "kieApiKey": "local-kie-api-key",
        "hmacKey": "local-webhook-hmac-key",
        "mode": "queue",
        "env": {"BUCKET_NAME": "kie2s3-local-archivebucket"},
        **more,
    }


@pytest.fixture
def supervisor() -> Iterator[int]:
    """A live process that belongs to the stack (its environment carries the stack's id)."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], env={**os.environ, MARKER_ENV: STACK_ID}
    )
    deadline = time.monotonic() + 10
    while not is_ours(process.pid, STACK_ID) and time.monotonic() < deadline:
        time.sleep(0.01)  # until the child has exec'd: its /proc environ is the parent's before
    yield process.pid
    process.kill()
    process.wait()


@pytest.fixture
def running(tmp_path: Path, supervisor: int) -> StackState:
    """A running stack's state directory."""
    directory = tmp_path / "up"
    directory.mkdir()
    write_state(directory, state_data(supervisor, forwardKey="local-forward-hmac-key"))
    state = read_state(directory)
    assert state is not None
    return state


def test_up_banner_lists_every_variable_make_env_sets(
    running: StackState, capsys: pytest.CaptureFixture[str]
) -> None:
    assert up.main(["--state-dir", str(running.directory), "env"]) == 0
    names = re.findall(r"^export (\w+)=", capsys.readouterr().out, flags=re.M)
    assert "LOCAL_AWS_CREDENTIALS_FILE" in names
    shown = up.banner(running)
    [start] = [i for i, line in enumerate(shown.splitlines()) if "make -s env" in line]
    listed = re.findall(r"\b[A-Z][A-Z0-9_]+\b", " ".join(shown.splitlines()[start:]))
    assert set(names) <= set(listed)
