"""The local stack's commands read a stack's state directory: here, one in a temp folder whose
"supervisor" is a process carrying the stack's id, as `make up` leaves it."""

import re

import pytest
from devstack import up
from devstack.running import StackState
from tests.local_state import running, supervisor

__all__ = ["running", "supervisor"]  # the fixtures


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
