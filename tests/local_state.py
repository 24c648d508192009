"""A running local stack's state directory in a temp folder, as `make up` leaves it, without the stack:
its "supervisor" is a process carrying the stack's id, so the state commands take it for running."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
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
        "env": {"BUCKET_NAME": "kie2s3-local-archivebucket", "TASKS_TABLE": "kie2s3-local-tasks"},
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
        time.sleep(0.01)  # until the child has exec'd: before, its /proc environ is the parent's
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
