"""Every mistake in a devstack command ends with one line saying what to do, a non-zero exit, no traceback.

The commands' entry points run in-process (as `python -m devstack.<command>` runs them); the make
targets' own checks run through make.
"""

import json
import os
import re
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from devstack import backfill, cli, invoke, redrive, send_callback, up

ROOT = Path(__file__).resolve().parents[2]
Main = Callable[[list[str] | None], int]


@pytest.fixture(autouse=True)
def no_stack_no_aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No local stack (an empty state directory of the test's own) and no AWS configuration at all."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    state_dir = tmp_path / "state"
    monkeypatch.setenv("KIE2S3_STATE_DIR", str(state_dir))
    return state_dir


def one_line(main: Main, argv: list[str], capsys: pytest.CaptureFixture[str], status: int = 2) -> str:
    """Run a command; it must exit with `status` and say exactly one line on stderr, which is returned."""
    assert cli.run(main, argv) == status
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_invoke_missing_event_file(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line(invoke.main, ["events/no-such-event.json"], capsys)
    assert line == (
        "error: event file events/no-such-event.json not found: the samples are in events/ (ls events), "
        "e.g. EVENT=events/callback-market-success.json"
    )
    assert "events/events" not in line


def test_invoke_malformed_event_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = tmp_path / "broken.json"
    event.write_text('{"version": "2.0",')
    line = one_line(invoke.main, [str(event)], capsys)
    assert line.startswith(f"error: {event} is not JSON (")
    assert line.endswith("an event file holds one JSON object, as in events/")


def test_invoke_event_that_is_not_an_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = tmp_path / "list.json"
    event.write_text("[1, 2]")
    assert (
        one_line(invoke.main, [str(event)], capsys)
        == f"error: {event} holds a JSON list, not an event object (see events/)"
    )


def test_invoke_callback_body_not_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = tmp_path / "callback.json"
    event.write_text('{"version": "2.0", "rawPath": "/callbacks/kie", "body": "{not json"}')
    line = one_line(invoke.main, [str(event)], capsys)
    assert line.startswith(f"error: {event}: its body is not JSON (")


@pytest.mark.parametrize(
    ("event", "said"),
    [
        ({"foo": 1}, "is no event the function takes: an API Gateway HTTP API (2.0) request, an SQS batch,"),
        ({"Records": [{"eventSource": "aws:s3"}]}, "is no event the function takes"),
        ({"version": "2.0", "rawPath": "/copies"}, "is no event the function takes"),
        (
            {"Records": [{"eventSource": "aws:sqs", "body": "{}"}]},
            "is not a whole SQS batch: Records.0.messageId: Field required (see events/ for one)",
        ),
        (
            {"Records": [{"eventSource": "aws:dynamodb", "eventName": "INSERT"}]},
            "is not a whole DynamoDB stream batch: Records.0.",
        ),
    ],
    ids=["unknown", "s3", "http-without-context", "sqs-without-message-id", "stream-without-record"],
)
def test_invoke_unsupported_or_malformed_event_is_one_line(
    event: dict[str, object], said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    line = one_line(invoke.main, [str(path)], capsys)
    assert line.startswith(f"error: {path} {said}")


def last_line(main: Main, argv: list[str], capsys: pytest.CaptureFixture[str], status: int) -> str:
    """Run a command that says what it starts, then fails: its last line on stderr, no traceback."""
    assert cli.run(main, argv) == status
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: ")
    return line


def test_invoke_forward_job_without_forwarding_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    line = last_line(invoke.main, ["events/sqs-forward-job.json"], capsys, status=2)
    assert line.endswith("(a forward job needs forwarding on: make up FORWARD=1)")


def test_invoke_function_error_is_one_line_as_lambda_reports_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from devstack import lambda_runtime

    def failing(event: object, context: object = None) -> object:
        raise RuntimeError("the ledger is gone")

    monkeypatch.setattr(lambda_runtime, "invoke", failing)
    line = last_line(invoke.main, ["events/get-task.json"], capsys, status=1)
    assert line == "error: the function failed: RuntimeError: the ledger is gone"


def test_invoke_without_an_event(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line(invoke.main, [""], capsys)
    assert line == "error: no event: make invoke EVENT=events/<file>.json (the samples are in events/)"
    assert "required: event" in one_line(invoke.main, [], capsys)


def test_invoke_unknown_option(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line(invoke.main, ["events/get-task.json", "--mode", "batch"], capsys)
    assert "invalid choice: 'batch'" in line
    assert line.endswith("(python -m devstack.invoke --help lists the options)")


def test_callback_without_family_or_event(capsys: pytest.CaptureFixture[str]) -> None:
    assert one_line(send_callback.main, [], capsys) == (
        "error: make callback FAMILY=<family> [TASK=<id>] [FILES=n], or make callback EVENT=events/<file>.json"
    )


def test_callback_with_no_stack_running(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line(send_callback.main, ["--family", "market"], capsys, status=1)
    assert line == "error: no local stack running: make up starts one"


def test_callback_unknown_family(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--family", "dalle", "--url", "http://127.0.0.1:9/callbacks/kie", "--hmac-key", "k"]
    line = one_line(send_callback.main, argv, capsys)
    assert line.startswith("error: unknown family 'dalle': one of ")
    assert "market" in line


def test_callback_unknown_family_is_refused_before_looking_for_a_stack(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = one_line(send_callback.main, ["--family", "markte"], capsys)
    assert line.startswith("error: unknown family 'markte': one of ")


@pytest.mark.parametrize("query", ["family=markte", "token=t&family=markte"])
def test_callback_url_with_an_unknown_family_hint_is_refused_before_sending(
    capsys: pytest.CaptureFixture[str], query: str
) -> None:
    # Nothing listens on port 9: a callback sent would end in a connection error (status 1), not this.
    argv = ["--family", "market", "--url", f"http://127.0.0.1:9/callbacks/kie?{query}", "--hmac-key", "k"]
    line = one_line(send_callback.main, argv, capsys)
    assert line.startswith("error: unknown family hint (?family=) 'markte': one of ")
    assert "market" in line


def test_callback_event_with_an_unknown_family_hint_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = json.loads((ROOT / "events/callback-market-success.json").read_text())
    sample["queryStringParameters"] = {"family": "markte"}
    event = tmp_path / "callback-typo.json"
    event.write_text(json.dumps(sample))
    line = one_line(send_callback.main, ["--event", str(event)], capsys)
    assert line.startswith("error: unknown family hint (?family=) 'markte': one of ")


def test_callback_url_without_hmac_key(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line(send_callback.main, ["--family", "market", "--url", "http://127.0.0.1:9/"], capsys)
    assert line.startswith("error: URL given without HMAC_KEY")


def test_callback_files_for_a_family_with_a_fixed_set(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--family", "flux_kontext", "--files", "3", "--url", "http://127.0.0.1:9/", "--hmac-key", "k"]
    line = one_line(send_callback.main, argv, capsys)
    assert line == "error: a flux_kontext callback names a fixed set of files: leave FILES out"


def test_callback_malformed_task_id(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--family", "market", "--task", "no spaces!", "--url", "http://127.0.0.1:9/", "--hmac-key", "k"]
    assert "is not a kie.ai task id" in one_line(send_callback.main, argv, capsys)


@pytest.mark.parametrize("command", ["status", "env"])
def test_state_commands_with_no_stack_running(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        one_line(up.main, [command], capsys, status=1) == "error: no local stack running: make up starts one"
    )


def test_logs_with_no_stack_running(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line(up.main, ["logs"], capsys, status=1)
    assert line == "error: no local stack running, and no logs left from one: make up starts one"


def test_down_with_no_stack_running_is_no_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(up.main, ["down"]) == 0
    assert capsys.readouterr().out == "no local stack running: nothing to stop\n"


def test_up_on_a_port_in_use(no_stack_no_aws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line(up.main, ["up", "--port", str(port)], capsys)
    assert line == f"error: port {port} is in use: make up PORT=<another port> (PORT=0 picks a free one)"
    assert not (no_stack_no_aws / "state.json").exists()  # nothing was started


def test_redrive_without_aws_credentials(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    line = one_line(redrive.main, ["--stack-name", "kie2s3"], capsys)
    assert line.startswith("error: make redrive STACK_NAME=kie2s3 needs AWS credentials: none found (")


def test_redrive_without_a_region(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    line = one_line(redrive.main, ["--stack-name", "kie2s3"], capsys)
    assert line == (
        "error: make redrive STACK_NAME=kie2s3 needs an AWS region: "
        "set AWS_DEFAULT_REGION (or a region in your AWS profile)"
    )


def test_backfill_to_a_stack_without_aws_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    tasks = tmp_path / "tasks.txt"
    tasks.write_text("task1\n")
    argv = ["--family", "market", "--tasks", str(tasks), "--stack-name", "kie2s3"]
    assert "needs AWS credentials: none found" in one_line(backfill.main, argv, capsys)


# ---------------------------------------------------------------------------------------------- make


def make(*args: str) -> subprocess.CompletedProcess[str]:
    """make, taking the project's environments as installed (`-o`: no `uv sync` output in between)."""
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.synced", "-o", ".venv/.synced-commands", *args],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def make_error(*args: str) -> str:
    """A make target that stops on its own check: exit 2 and one line, the message."""
    done = make(*args)
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    found = re.fullmatch(r"Makefile:\d+: \*\*\* (.*)\.  Stop\.", lines[0])
    assert found is not None, lines[0]
    return found.group(1)


@pytest.fixture
def makefile_targets() -> list[str]:
    return re.findall(r"^([A-Za-z0-9_-]+):[^=\n]*## ", (ROOT / "Makefile").read_text(), flags=re.M)


def test_make_help_lists_every_target(makefile_targets: list[str]) -> None:
    listed = re.findall(r"^  (\S+)", make("help").stdout, flags=re.M)
    assert listed == makefile_targets
    assert {"e2e", "up", "down", "status", "logs", "callback", "invoke"} <= set(listed)


def test_make_callback_without_its_variables() -> None:
    assert make_error("callback").startswith("usage: make callback FAMILY=<family> [TASK=<id>] [FILES=n], or")


def test_make_redrive_without_stack_name() -> None:
    assert make_error("redrive") == "usage: make redrive STACK_NAME=<deployed stack>"


def test_make_redrive_without_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert make_error("redrive", "STACK_NAME=kie2s3").startswith(
        "error: make redrive needs AWS credentials: none found ("
    )


def test_make_deploy_without_aws_credentials_stops_before_building() -> None:
    message = make_error("deploy")
    assert message.startswith(
        ("error: make deploy needs AWS credentials", "error: make deploy needs an AWS region")
    )


def test_make_e2e_against_a_stack_without_a_task() -> None:
    assert make_error("e2e", "STACK_NAME=kie2s3").startswith(
        "make e2e STACK_NAME=kie2s3 also needs KIE_TASK_ID="
    )


def test_make_e2e_against_a_stack_without_aws_credentials() -> None:
    message = make_error("e2e", "STACK_NAME=kie2s3", "KIE_TASK_ID=task1")
    assert message.startswith("error: make e2e STACK_NAME=kie2s3 needs an AWS region")


def test_make_invoke_missing_event_file() -> None:
    done = make("invoke", "EVENT=events/no-such-event.json")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "error: event file events/no-such-event.json not found" in done.stderr.splitlines()[0]


def test_make_help_without_python_313_lists_targets_and_says_how_to_get_it(
    makefile_targets: list[str],
) -> None:
    done = make("help", "PYTHON=")
    assert done.returncode == 0, done.stderr
    assert re.findall(r"^  (\S+)", done.stdout, flags=re.M) == makefile_targets
    assert done.stdout.rstrip().splitlines()[-1] == (
        "Python 3.13 not found: install it with pyenv (pyenv install 3.13.0) or put python3.13 on PATH;"
        " every target but help needs it"
    )


def test_make_target_without_python_313_stops_with_how_to_get_it() -> None:
    assert make_error("lint", "PYTHON=") == (
        "Python 3.13 not found: install it with pyenv (pyenv install 3.13.0) or put python3.13 on PATH"
    )


def _bin(directory: Path, name: str, script: str) -> None:
    (directory / name).write_text(f"#!/bin/sh\n{script}\n")
    (directory / name).chmod(0o755)


@pytest.mark.parametrize(
    "installed",
    [
        pytest.param({}, id="no-python3.13-no-pyenv"),
        # pyenv's shim answers for every version it has ever seen; run outside that version, it fails.
        pytest.param(
            {
                "pyenv": "echo \"pyenv: version '3.13' not installed\" >&2; exit 1",
                "python3.13": 'echo "pyenv: python3.13: command not found" >&2; exit 127',
            },
            id="pyenv-shim-without-3.13",
        ),
        # a python3.13 that is not 3.13 (here, one that fails make's check of its version)
        pytest.param({"python3.13": "exit 1"}, id="python3.13-that-is-not-3.13"),
    ],
)
def test_make_help_where_no_python_313_runs_lists_targets_and_says_how_to_get_it(
    installed: dict[str, str], makefile_targets: list[str], tmp_path: Path
) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for name, script in installed.items():
        _bin(fake_bin, name, script)
    done = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=ROOT,
        env={"PATH": f"{fake_bin}:/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert re.findall(r"^  (\S+)", done.stdout, flags=re.M) == makefile_targets
    assert done.stdout.rstrip().splitlines()[-1].startswith("Python 3.13 not found: install it with pyenv")
