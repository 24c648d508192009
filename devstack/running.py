"""The state of a `make up` stack between commands: its directory, its state file and its processes.

Standard library only: `make down`, `make status`, `make logs` and `make env` read it without the
project's environment. The state directory is `.devstack/up/` unless `KIE2S3_STATE_DIR` (or a
command's `--state-dir`) names another; it holds `state.json`, the logs and nothing else, and
`make down` removes it, keeping the logs in `<state dir>.last/` for `make logs LAST=1`. Every process a stack starts carries its id in the environment variable
`KIE2S3_DEVSTACK_ID`, so that `make down` finds them all, also after a crash, and never a
process that merely reuses a recorded pid.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from devstack.cli import UserError

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
STATE_DIR_ENV: Final = "KIE2S3_STATE_DIR"
DEFAULT_STATE_DIR: Final = REPO_ROOT / ".devstack" / "up"
MARKER_ENV: Final = "KIE2S3_DEVSTACK_ID"
STATE_FILE: Final = "state.json"
STOP_GRACE_SECONDS: Final = 5.0


def state_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The state directory: the one given, else $KIE2S3_STATE_DIR, else .devstack/up/ in the repository."""
    chosen = explicit or os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR
    return Path(chosen).resolve()


def last_logs_dir(directory: Path) -> Path:
    """Where `make down` keeps the logs of the stack it stopped (`make logs LAST=1`): beside the state
    directory, `<state dir>.last` (.devstack/up.last)."""
    return directory.with_name(f"{directory.name}.last")


def keep_logs(directory: Path) -> Path | None:
    """Move the state directory's logs to `last_logs_dir` (replacing the stack before's); where they went,
    or None when there were none."""
    logs = sorted(directory.glob("*.log"))
    if not logs:
        return None
    last = last_logs_dir(directory)
    shutil.rmtree(last, ignore_errors=True)
    last.mkdir(parents=True)
    for path in logs:
        path.replace(last / path.name)
    return last


@dataclass(frozen=True)
class StackState:
    """What `make up` recorded: where everything is, and the processes it started."""

    directory: Path
    data: dict[str, Any]

    @property
    def stack_id(self) -> str:
        """The id every process of this stack carries in KIE2S3_DEVSTACK_ID."""
        return str(self.data["stackId"])

    @property
    def ready(self) -> bool:
        """The stack finished starting (and has not begun to stop)."""
        return bool(self.data.get("ready"))

    @property
    def pids(self) -> dict[str, int]:
        """Process name -> pid, the supervisor's included."""
        return {name: int(pid) for name, pid in self.data.get("pids", {}).items()}

    @property
    def api_url(self) -> str:
        """The local HTTP API, `http://127.0.0.1:<port>`."""
        return str(self.data["apiUrl"])

    @property
    def bucket(self) -> str:
        """The archive bucket, in the AWS emulator."""
        return str(self.data["bucket"])

    @property
    def aws_url(self) -> str:
        """The AWS emulator (moto) endpoint."""
        return str(self.data["awsUrl"])

    @property
    def emulator_url(self) -> str:
        """The kie.ai emulator's base URL."""
        return str(self.data["kieUrl"])

    @property
    def kie_api_key(self) -> str:
        """The API key the kie.ai emulator expects (its admin API too)."""
        return str(self.data["kieApiKey"])

    @property
    def hmac_key(self) -> str:
        """The webhook HMAC key the local function checks callbacks against."""
        return str(self.data["hmacKey"])

    @property
    def events_queue_url(self) -> str:
        """The queue a rule on the bus delivers kie2s3's events to (make events reads it)."""
        return str(self.data["eventsQueueUrl"])

    @property
    def physical_ids(self) -> dict[str, str]:
        """The template's resources as the AWS emulator holds them, by logical id."""
        return {str(k): str(v) for k, v in self.data.get("physicalIds", {}).items()}

    @property
    def mode(self) -> str:
        """The copy mode (COPY_MODE) the stack runs with."""
        return str(self.data["mode"])

    @property
    def env(self) -> dict[str, str]:
        """The functions' environment, as the template resolves it against the local stack."""
        return {str(k): str(v) for k, v in self.data["env"].items()}

    def log(self, name: str) -> Path:
        """A log file of the stack (`stack`, `worker`, `events`, `moto`)."""
        return self.directory / f"{name}.log"


def read_state(directory: Path) -> StackState | None:
    """The recorded state, or None when no stack was started from this directory."""
    try:
        data = json.loads((directory / STATE_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UserError(
            f"{directory / STATE_FILE} is unreadable ({exc}): make down cleans up", status=1
        ) from exc
    return StackState(directory, data)


def write_state(directory: Path, data: dict[str, Any]) -> None:
    """Replace the state file atomically (readers never see half of it)."""
    partial = directory / f"{STATE_FILE}.partial"
    partial.write_text(json.dumps(data, indent=2))
    partial.replace(directory / STATE_FILE)


def _environ_of(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None


def is_ours(pid: int, stack_id: str) -> bool:
    """The process is alive and belongs to that stack (its environment carries the stack's id).

    Without /proc (not Linux), a live process with that pid is taken to be ours.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: never ours
    if not Path("/proc/self/environ").exists():
        return True
    environ = _environ_of(pid)
    return environ is not None and f"{MARKER_ENV}={stack_id}".encode() in environ.split(b"\0")


def processes_of(stack_id: str, recorded: dict[str, int] | None = None) -> list[int]:
    """Every live process of the stack: those whose environment carries its id (on Linux), and the
    recorded ones that still do."""
    found = {pid for pid in (recorded or {}).values() if is_ours(pid, stack_id)}
    proc = Path("/proc")
    if proc.is_dir():
        marker = f"{MARKER_ENV}={stack_id}".encode()
        for entry in proc.iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                environ = _environ_of(int(entry.name))
                if environ is not None and marker in environ.split(b"\0"):
                    found.add(int(entry.name))
    return sorted(found)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def stop_processes(pids: list[int], stack_id: str, *, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM each (once it is checked to be ours), wait up to `grace` seconds, then SIGKILL the rest."""
    targets = [pid for pid in pids if is_ours(pid, stack_id)]
    for pid in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        targets = [pid for pid in targets if is_ours(pid, stack_id) and not _zombie(pid)]
        if not targets:
            return
        time.sleep(0.05)
    for pid in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Nothing listens on the port (a server could bind it now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def running_stack(directory: Path | None = None) -> StackState:
    """The running stack of that state directory; a UserError when there is none, or it died."""
    directory = directory or state_dir()
    state = read_state(directory)
    if state is None:
        raise UserError("no local stack running: make up starts one", status=1)
    supervisor = state.pids.get("supervisor")
    if supervisor is None or not is_ours(supervisor, state.stack_id):
        raise UserError(
            "the local stack has stopped (a crash, or its AWS emulator ended): make logs shows why, "
            "make down cleans up, make up starts a new one",
            status=1,
        )
    if not state.ready:
        raise UserError("the local stack is still starting (or stopping): try again in a moment", status=1)
    return state


def running_stack_or_none(directory: Path | None = None) -> StackState | None:
    """The running stack, or None when none is up (whatever the reason)."""
    try:
        return running_stack(directory)
    except UserError:
        return None
