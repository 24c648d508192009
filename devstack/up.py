"""`make up`, `make down`, `make status`, `make logs`, `make env`: a local kie2s3 that keeps running.

    python -m devstack.up up [--port 3000] [--mode queue|inline] [--forward-url URL | --forward] [--auth iam] [--state-dir D]
    python -m devstack.up down | status | logs [--follow] [--lines N] | env   [--state-dir D]
    (`make logs` runs devstack.logs: the same logs, with --function, --since and --json too)

`up` starts the stack in the background (`devstack.serve`), waits until it is ready and prints what
is where; it refuses to start a second one. `down` stops every process the stack started (also
after a crash: each carries the stack's id) and removes its state directory. The state directory
is .devstack/up/ unless $KIE2S3_STATE_DIR or --state-dir names another. moto keeps everything in
memory: the stack's data lives as long as it does. `down`, `status`, `logs` and `env` use the
standard library only.
"""

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from devstack.cli import Parser, UserError, run
from devstack.logs import Selection, local_logs
from devstack.running import (
    MARKER_ENV,
    REPO_ROOT,
    StackState,
    is_ours,
    keep_logs,
    last_logs_dir,
    port_is_free,
    processes_of,
    read_state,
    running_stack,
    state_dir,
    stop_processes,
)

DEFAULT_PORT: Final = 3000  # sam local start-api's
STARTUP_TIMEOUT_SECONDS: Final = 90.0
# The user's AWS settings never reach the stack: it talks to its own emulator only.
_KEPT_ENVIRONMENT: Final = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TERM")
# What the stack's build of the functions' package (uv, from the package index) needs of the user's
# network setup: certificates, proxies, uv's own settings. The functions themselves never see these.
_NETWORK_ENVIRONMENT: Final = re.compile(
    r"^(SSL_CERT_(FILE|DIR)|(HTTPS?|NO|ALL)_PROXY|UV_[A-Z_]+)$", re.IGNORECASE
)


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _leftovers(state: StackState) -> list[int]:
    return processes_of(state.stack_id, state.pids)


def _clean(directory: Path, state: StackState | None) -> None:
    """Stop whatever the stack left running (the supervisor first: it stops its children) and remove
    the state directory, its logs kept for `make logs LAST=1`."""
    if state is not None:
        supervisor = state.pids.get("supervisor")
        if supervisor is not None and is_ours(supervisor, state.stack_id):
            stop_processes([supervisor], state.stack_id, grace=15.0)
        stop_processes(_leftovers(state), state.stack_id)
        left = _leftovers(state)
        if left:
            raise UserError(
                f"processes {left} of the local stack would not stop: kill them, then make down again"
            )
    keep_logs(directory)
    shutil.rmtree(directory, ignore_errors=True)


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def _clear_the_way(directory: Path) -> None:
    """Refuse a second stack; clean up after one that stopped uncleanly, or one that failed to start."""
    state = read_state(directory)
    if state is not None:
        supervisor = state.pids.get("supervisor")
        if supervisor is not None and is_ours(supervisor, state.stack_id):
            where = state.data.get("apiUrl", "still starting")
            raise UserError(
                f"a local stack is already running ({where}): make down stops it, make status shows it"
            )
        print(f"cleaning up a local stack that stopped uncleanly (its logs were in {_display(directory)})")
        _clean(directory, state)
    elif directory.exists():
        keep_logs(directory)  # the logs of a stack that failed to start: make logs LAST=1
        shutil.rmtree(directory)


def up(
    directory: Path, port: int, mode: str, forward_url: str = "", receiver: bool = False, auth: str = "none"
) -> int:
    """Start the stack in the background and print what is where once it is ready."""
    if forward_url and receiver:
        raise UserError("FORWARD=1 forwards to the local receiver, FORWARD_URL=<url> to yours: give one")
    if forward_url and port:
        from devstack.serve import refuse_loop

        refuse_loop(forward_url, port)
    _clear_the_way(directory)
    if port and not port_is_free(port):
        raise UserError(f"port {port} is in use: make up PORT=<another port> (PORT=0 picks a free one)")
    directory.mkdir(parents=True)
    stack_id = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k in _KEPT_ENVIRONMENT or _NETWORK_ENVIRONMENT.match(k)}
    env.update(
        {
            MARKER_ENV: stack_id,
            "PYTHONPATH": f"{REPO_ROOT / 'src' / 'handler'}:{REPO_ROOT}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    command = [sys.executable, "-m", "devstack.serve", "--state-dir", str(directory), "--port", str(port)]
    started = time.monotonic()
    with (directory / "stack.log").open("ab") as log:
        forwarding = ["--forward-url", forward_url] if forward_url else []
        process = subprocess.Popen(
            [
                *command,
                "--mode",
                mode,
                "--auth",
                auth,
                *forwarding,
                *(["--forward-receiver"] if receiver else []),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in this terminal later never reaches it; make down does
        )
    try:
        state = _wait_until_ready(directory, process)
    except BaseException:
        _clean_failed_start(directory, stack_id, process)
        raise
    print(banner(state, time.monotonic() - started))
    return 0


def _wait_until_ready(directory: Path, process: "subprocess.Popen[bytes]") -> StackState:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while True:
        state = read_state(directory)
        if state is not None and state.ready:
            return state
        if process.poll() is not None or (state is not None and state.data.get("error")):
            reason = (state.data.get("error") if state else None) or _last_line(directory / "stack.log")
            raise UserError(f"the local stack did not start: {reason}", status=1)
        if time.monotonic() > deadline:
            raise UserError(
                f"the local stack was not ready within {STARTUP_TIMEOUT_SECONDS:.0f} s: "
                f"see {_display(directory / 'stack.log')}",
                status=1,
            )
        time.sleep(0.05)


def _clean_failed_start(directory: Path, stack_id: str, process: "subprocess.Popen[bytes]") -> None:
    """Stop what a failed start left; keep its logs (make logs), drop its state."""
    stop_processes([process.pid], stack_id)
    process.wait()
    stop_processes(processes_of(stack_id), stack_id)
    (directory / "state.json").unlink(missing_ok=True)


def banner(state: StackState, seconds: float | None = None) -> str:
    """What is where, and how to stop it."""
    ready = f" (ready in {seconds:.1f} s)" if seconds is not None else ""
    return "\n".join(
        [
            f"kie2s3 is running locally, {state.mode} mode{ready}",
            f"  API          {state.api_url}",
            "                 POST /callbacks/kie     kie.ai's callbacks: HMAC-signed (make callback signs them)",
            *_iam_lines(state),
            f"  bucket       {state.bucket}   in the AWS emulator (moto) at {state.aws_url}",
            f"  kie.ai       {state.emulator_url}   the emulator (API key {state.kie_api_key})",
            f"  HMAC key     {state.hmac_key}   signs test callbacks (kie.ai's webhookHmacKey)",
            "  functions    the copy worker polls the copy queue; the events function reads the ledger's stream;",
            "               the reconciler runs on its schedule",
            "  events       make events [FOLLOW=1]  (what a rule on the bus for source kie2s3 delivers)",
            *_forwarding_lines(state),
            f"  logs         make logs  (in {_display(state.directory)})",
            *_shell_lines(state),
            "  stop         make down  (moto keeps everything in memory: the archive ends with the stack)",
        ]
    )


def _shell_lines(state: StackState) -> list[str]:
    """`make -s env`'s variables, every one of them, three names a line."""
    names = list(shell_variables(state))
    rows = [", ".join(names[i : i + 3]) for i in range(0, len(names), 3)]
    first = '  shell        eval "$(make -s env)"  sets '
    return [first + rows[0], *(" " * len(first) + row for row in rows[1:])]


def _iam_lines(state: StackState) -> list[str]:
    credentials = state.data.get("credentialsFile")
    if not credentials:
        return [
            "                 POST /copies            unsigned locally (IAM-authorised, SigV4, when deployed)",
            "                 GET  /tasks/{taskId}    unsigned locally (IAM-authorised, SigV4, when deployed)",
        ]
    return [
        "                 POST /copies            SigV4-signed (AUTH=iam): make call ROUTE=/copies BODY='{...}'",
        "                 GET  /tasks/{taskId}    SigV4-signed (AUTH=iam): make call ROUTE=/tasks/<id>",
        f"  credentials  {_display(Path(str(credentials)))}: profiles kie2s3-local (keys) and",
        "               kie2s3-local-session (keys + session token); others get 403 (IAM policy not emulated)",
    ]


def _forwarding_lines(state: StackState) -> list[str]:
    url = state.data.get("forwardUrl")
    if not url:
        return []
    where = (
        "the local forward receiver (its requests in make logs)" if state.data.get("forwardReceiver") else ""
    )
    return [
        f"  forwarding   every accepted callback to {str(url).split('?', 1)[0]} {where}".rstrip(),
        f"               signed as kie.ai signs, with the forwarding key {state.data.get('forwardKey')}",
    ]


def down(directory: Path) -> int:
    """Stop everything the stack started and remove its state directory."""
    state = read_state(directory)
    if state is None:
        kept = keep_logs(directory) if directory.exists() else None
        shutil.rmtree(directory, ignore_errors=True)
        print(
            "no local stack running: nothing to stop"
            + (f" (the logs of a failed start are in {_display(kept)}: make logs LAST=1)" if kept else "")
        )
        return 0
    where = state.data.get("apiUrl", "")
    running = len(_leftovers(state))
    _clean(directory, state)
    print(
        f"stopped the local stack {where} ({running} processes); removed {_display(directory)},"
        f" its logs kept in {_display(last_logs_dir(directory))} (make logs LAST=1)"
    )
    return 0


def status(directory: Path) -> int:
    """Print what runs where; exit status 1 when no stack is running."""
    state = running_stack(directory)
    started = float(state.data.get("startedAt", time.time()))
    print(banner(state))
    alive = {name: pid for name, pid in state.pids.items() if is_ours(pid, state.stack_id)}
    print(f"  processes    {', '.join(f'{name} {pid}' for name, pid in alive.items())}")
    missing = sorted(set(state.pids) - set(alive))
    if missing:
        print(f"  NOT running  {', '.join(missing)} (make logs shows why)")
    print(
        f"  up for       {(time.time() - started) / 60:.0f} min, since {time.strftime('%H:%M:%S', time.localtime(started))}"
    )
    return 0 if not missing else 1


def shell_variables(state: StackState) -> dict[str, str]:
    """What `make -s env` sets: the stack's URLs and keys, by shell variable."""
    return {
        "API": state.api_url,
        "BUCKET": state.bucket,
        "KIE_WEBHOOK_HMAC_KEY": state.hmac_key,
        "KIE_EMULATOR_URL": state.emulator_url,
        "KIE_EMULATOR_API_KEY": state.kie_api_key,
        "AWS_EMULATOR_URL": state.aws_url,
        "FORWARD_HMAC_KEY": str(state.data.get("forwardKey", "")),
        # AUTH=iam: the credentials file of the local stack's profiles (empty otherwise)
        "LOCAL_AWS_CREDENTIALS_FILE": str(state.data.get("credentialsFile", "")),
    }


def env(directory: Path) -> int:
    """Shell assignments for the running stack: eval "$(make -s env)"."""
    for name, value in shell_variables(running_stack(directory)).items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """up, down, status, logs or env."""
    parser = Parser(prog="devstack.up", description=__doc__)
    parser.add_argument("--state-dir", help="default: $KIE2S3_STATE_DIR, else .devstack/up")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start the local stack")
    start.add_argument("--port", type=int, default=DEFAULT_PORT, help="the API's port (0: any free one)")
    start.add_argument("--mode", choices=("queue", "inline"), default="queue", help="COPY_MODE")
    start.add_argument(
        "--forward-url", default="", help="ForwardUrl: your handler, accepted callbacks go there"
    )
    start.add_argument("--forward", action="store_true", help="forward to a local receiver that prints them")
    start.add_argument(
        "--auth",
        choices=("none", "iam"),
        default="none",
        help="iam: POST /copies and GET /tasks take only requests SigV4-signed with the stack's credentials",
    )
    stop = commands.add_parser("down", help="stop it and remove its state")
    state = commands.add_parser("status", help="what runs where")
    show = commands.add_parser("logs", help="its logs (python -m devstack.logs: the same, with every option)")
    show.add_argument("--lines", type=int, default=100, help="lines of each log (0: all)")
    show.add_argument("--follow", action="store_true", help="keep printing until Ctrl-C")
    shell = commands.add_parser("env", help="shell assignments: API, BUCKET, KIE_WEBHOOK_HMAC_KEY, …")
    for command in (start, stop, state, show, shell):
        command.add_argument("--state-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    directory = state_dir(args.state_dir)
    match args.command:
        case "up":
            return up(directory, args.port, args.mode, args.forward_url, args.forward, args.auth)
        case "down":
            return down(directory)
        case "status":
            return status(directory)
        case "logs":
            return local_logs(directory, Selection(), args.lines, args.follow)
        case _:
            return env(directory)


if __name__ == "__main__":
    sys.exit(run(main))
