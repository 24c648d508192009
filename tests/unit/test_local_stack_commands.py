"""The local stack's commands read a stack's state directory: here, one in a temp folder whose
"supervisor" is a process carrying the stack's id, as `make up` leaves it."""

import re

import pytest
from devstack import logs, up
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


def test_make_down_keeps_the_stopped_stacks_logs_for_make_logs_last(
    running: StackState, capsys: pytest.CaptureFixture[str]
) -> None:
    (running.directory / "worker.log").write_text(
        '{"level": "INFO", "message": "file archived", "timestamp": "2026-12-07 10:00:00,000+0000",'
        ' "function_name": "kie2s3-copy-worker", "key": "kie/t/00.png"}\n'
    )
    assert up.main(["--state-dir", str(running.directory), "down"]) == 0
    assert not running.directory.exists()
    assert "its logs kept in" in capsys.readouterr().out
    assert logs.main(["--last", "--state-dir", str(running.directory)]) == 0
    assert (
        capsys.readouterr().out == "2026-12-07 10:00:00 copy-worker  INFO    file archived key=kie/t/00.png\n"
    )
