"""`make up` itself: one stack at a time, what status/env/logs say, invoke against it, clean-up after a crash."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from devstack.running import port_is_free
from tests.e2e.conftest import ROOT, Target, _run, stack_ports, stack_processes

pytestmark = pytest.mark.e2e


def make(*args: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.synced", "-o", ".venv/.synced-commands", *args],
        cwd=ROOT,
        env={**os.environ, "KIE2S3_STATE_DIR": str(state_dir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_up_refuses_to_start_a_second_stack(local_target: Target) -> None:
    again = _run("up", "--port", "0", state_dir=Path(local_target.local["stateDir"]))
    assert again.returncode == 2
    assert again.stderr.splitlines() == [
        f"error: a local stack is already running ({local_target.api_url}): make down stops it, make status shows it"
    ]
    assert local_target.task("nothing-here").status == 404  # the running one is untouched


def test_status_env_and_logs_describe_the_running_stack(local_target: Target) -> None:
    state_dir = Path(local_target.local["stateDir"])
    status = _run("status", state_dir=state_dir)
    assert status.returncode == 0, status.stderr
    assert local_target.api_url in status.stdout
    assert "unsigned locally" in status.stdout
    env = _run("env", state_dir=state_dir)
    assert f"export API={local_target.api_url}\n" in env.stdout
    assert f"export BUCKET={local_target.bucket}\n" in env.stdout
    assert local_target.task("logged-request").status == 404
    logs = _run("logs", "--lines", "0", state_dir=state_dir)
    access = [line for line in logs.stdout.splitlines() if " ACCESS " in line and "logged-request" in line]
    assert access, logs.stdout  # the API's access log, one readable line
    assert "method=GET path=/tasks/logged-request " in access[0]
    assert " status=404 " in access[0]
    assert "polls the copy queue" in logs.stdout  # the functions process


def test_invoke_runs_against_the_running_stack(local_target: Target) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "devstack.invoke", "events/callback-veo-success.json", "--mode", "queue"],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": f"{ROOT / 'src/handler'}:{ROOT}",
            "KIE2S3_STATE_DIR": local_target.local["stateDir"],
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "invoking against the running local stack" in done.stderr
    response, final = done.stdout.split("\nfinal state of task ", 1)
    answer = json.loads(response)
    assert answer["statusCode"] == 200
    task_id = answer["body"]["taskId"]  # the status document as JSON, not an escaped string
    assert final.startswith(f"{task_id}: copied\n")
    document = local_target.until_done(task_id)  # the same ledger, seen over HTTP
    assert document["state"] == "copied"
    assert len(local_target.stored(document["files"][0]["key"])) == document["files"][0]["bytes"]


def test_make_down_after_a_crash_stops_every_process(tmp_path: Path) -> None:
    state_dir = tmp_path / "crashed"
    started = make("up", "PORT=0", state_dir=state_dir)
    assert started.returncode == 0, started.stdout + started.stderr
    assert "make down" in started.stdout
    state = json.loads((state_dir / "state.json").read_text())
    os.kill(state["pids"]["supervisor"], signal.SIGKILL)  # a crash: nothing of the stack stops itself
    deadline = time.monotonic() + 10
    while state["pids"]["supervisor"] in stack_processes(state) and time.monotonic() < deadline:
        time.sleep(0.05)
    status = make("status", state_dir=state_dir)
    assert status.returncode != 0
    assert "the local stack has stopped" in status.stderr
    assert "Traceback" not in status.stderr
    stopped = make("down", state_dir=state_dir)
    assert stopped.returncode == 0, stopped.stderr
    assert stack_processes(state) == []
    assert [port for port in stack_ports(state) if not port_is_free(port)] == []
    assert not state_dir.exists()


def test_functions_run_from_the_package_not_the_source_tree(local_target: Target) -> None:
    package = local_target.local["package"]
    assert Path(package["code"]).is_relative_to(ROOT / ".devstack" / "package")
    runtimes = []
    for pid in stack_processes(local_target.local):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # ended meanwhile
        if any(part.endswith(b"lambda_bootstrap.py") for part in command):
            runtimes.append((command, Path(f"/proc/{pid}/cwd").resolve()))
    # The API function, the copy worker and the events function at least: python3.13 -I in the package.
    assert len(runtimes) >= 3
    for command, cwd in runtimes:
        assert b"-I" in command
        assert b"-S" in command
        assert Path(command[0].decode()) != Path(sys.executable)  # the base interpreter, not the venv's
        assert cwd == Path(package["code"])
