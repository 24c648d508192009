"""Local Lambda execution environments: the package run as Lambda runs it, under Lambda's limits.

Each environment ("container") is one process, `python3.13 -I -S -u devstack/lambda_bootstrap.py`
with only the package (`devstack.package`) and its layer on the path, talking to a Runtime API this
module serves on loopback (one per container, as Lambda's is), with:

- Lambda's environment variables (`AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`,
  `AWS_REGION`, `LAMBDA_TASK_ROOT`, `_HANDLER`, …) and the template's, and nothing of this shell's;
- the template's `MemorySize` as a hard limit (a memory cgroup: past it the kernel kills the
  process, as Lambda does, reported as `Runtime.OutOfMemory`) and the CPU share Lambda gives that
  memory (one vCPU per 1,769 MB: a CPU cgroup quota);
- its `Timeout` as a hard wall-clock limit: the process is killed (`Sandbox.Timedout`) and the next
  invocation starts a new one;
- a private mount namespace where everything is read-only, the package and the layer included (for
  root too), but `/tmp`.
- Lambda's payload limits (`devstack.payload`): an event over 6 MB is refused before the process
  sees it (`RequestEntityTooLargeException`), an answer over it fails the invocation
  (`Function.ResponseSizeTooLarge`; the runtime's POST of it is answered 413).

The cgroups and the mount namespace need root and the cgroup v1 memory and cpu controllers (these
machines have them). Elsewhere a watchdog kills the process past its memory (RSS), the package is
read-only by its file modes only, and the CPU is not limited; `isolation()` says which applies.
A function's invocations run one at a time in a container; concurrent ones start more, as Lambda does.
"""

import contextlib
import itertools
import json
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, Final

from devstack.package import Package, interpreter
from devstack.payload import FunctionError, check_request, encoded, response_error
from devstack.running import MARKER_ENV

BOOTSTRAP: Final = Path(__file__).resolve().parent / "lambda_bootstrap.py"
# Lambda: "at 1,769 MB, a function has the equivalent of one vCPU" (Lambda Developer Guide, memory).
MB_PER_VCPU: Final = 1769
API_VERSION: Final = "2018-06-01"
CGROUP_ROOT: Final = Path("/sys/fs/cgroup")
# How long a container may take to start (its init) before an invocation gives up on it; Lambda's
# init limit is 10 s, after which it tries again within the invocation's own timeout.
INIT_TIMEOUT_SECONDS: Final = 60.0
WATCHDOG_SECONDS: Final = 0.05
ACCOUNT_ID: Final = "123456789012"


@dataclass(frozen=True)
class FunctionConfig:
    """What Lambda knows of a function: its name, handler, memory, timeout and environment."""

    name: str
    handler: str
    memory_mb: int
    timeout_seconds: float
    environment: Mapping[str, str]
    region: str = "us-east-1"

    @property
    def arn(self) -> str:
        """The function's ARN."""
        return f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.name}"

    @property
    def cpus(self) -> float:
        """The CPU share Lambda gives its memory (at most this machine's cores)."""
        return min(self.memory_mb / MB_PER_VCPU, float(os.cpu_count() or 1))


def lambda_environment(config: FunctionConfig, package: Package, runtime_api: str) -> dict[str, str]:
    """The process's whole environment: Lambda's variables over the function's own (which cannot
    override the reserved ones), as in a Lambda execution environment."""
    stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
    return {
        **config.environment,
        "_HANDLER": config.handler,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": config.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": stream,
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_REGION": config.region,
        "AWS_DEFAULT_REGION": config.region,
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "LAMBDA_TASK_ROOT": str(package.code),
        "LAMBDA_RUNTIME_DIR": str(BOOTSTRAP.parent),
        "LANG": "en_US.UTF-8",
        "PATH": "/usr/local/bin:/usr/bin/:/bin",
        "TZ": ":UTC",
        # The local stack's mark on every process it starts (make down finds them by it); not Lambda's.
        **({MARKER_ENV: os.environ[MARKER_ENV]} if MARKER_ENV in os.environ else {}),
    }


# ---------------------------------------------------------------------------------------------- isolation


@dataclass(frozen=True)
class Isolation:
    """What this machine lets the local stack enforce."""

    cgroups: bool  # memory and CPU by cgroup v1 (else memory by a watchdog, CPU unlimited)
    namespace: bool  # read-only mounts but /tmp (else the package's file modes only)

    def describe(self) -> str:
        """One line for the logs."""
        memory = "memory and CPU by cgroup" if self.cgroups else "memory by an RSS watchdog, CPU unlimited"
        files = "all but /tmp read-only" if self.namespace else "the package read-only by its file modes"
        return f"Lambda's limits: {memory}; {files}; timeouts enforced"


def _own_cgroup(controller: str) -> Path | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            found = CGROUP_ROOT / controller / path.lstrip("/")
            return found if (found / "cgroup.procs").exists() else None
    return None


def isolation() -> Isolation:
    """The isolation available here: cgroups and a mount namespace need root and Linux's cgroup v1."""
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    cgroups = root and _own_cgroup("memory") is not None and _own_cgroup("cpu") is not None
    namespace = root and shutil.which("unshare") is not None and shutil.which("mount") is not None
    return Isolation(cgroups=cgroups, namespace=namespace)


_serial = itertools.count()


def _cgroup_prefix(pid: int) -> str:
    """How the cgroups a process makes are named: the prefix, then a serial number."""
    return f"kie2s3-{pid}-"


def own_cpu_cgroups() -> list[Path]:
    """The CPU cgroups this process has made (`Cgroup`) and not removed yet; none without cgroups."""
    cpu = _own_cgroup("cpu")
    return [] if cpu is None else sorted(cpu.glob(_cgroup_prefix(os.getpid()) + "*"))


class Cgroup:
    """A memory and a CPU cgroup (v1) for one container, beside this process's own.

    `memory_mb=None`: the CPU quota alone (a process that must hold more than a function may, such
    as `make bench`'s plain upload of a file from memory, at the function's CPU share).
    """

    def __init__(self, memory_mb: int | None, cpus: float) -> None:
        name = f"{_cgroup_prefix(os.getpid())}{next(_serial)}"
        memory, cpu = _own_cgroup("memory"), _own_cgroup("cpu")
        if memory is None or cpu is None:
            raise RuntimeError("no cgroup v1 memory and cpu controllers: see devstack.sandbox.isolation()")
        _remove_orphans(memory, cpu)
        self.memory = memory / name if memory_mb is not None else None
        self.cpu = cpu / name
        for path in self._paths:
            path.mkdir()
        if self.memory is not None and memory_mb is not None:
            limit = str(memory_mb * 1024 * 1024)
            (self.memory / "memory.limit_in_bytes").write_text(limit)
            with contextlib.suppress(OSError):  # swap accounting may be off; no swap is used then either
                (self.memory / "memory.memsw.limit_in_bytes").write_text(limit)
        period = int((self.cpu / "cpu.cfs_period_us").read_text())
        (self.cpu / "cpu.cfs_quota_us").write_text(str(max(1000, int(period * cpus))))

    @property
    def _paths(self) -> list[Path]:
        return [path for path in (self.memory, self.cpu) if path is not None]

    @property
    def procs(self) -> list[Path]:
        """The files a process writes its pid to, to join."""
        return [path / "cgroup.procs" for path in self._paths]

    def join_steps(self) -> list[str]:
        """Shell commands that move the shell running them (and what it then execs) into the cgroups."""
        return [f"echo $$ > {shlex.quote(str(p))}" for p in self.procs]

    def wrap(self, command: Sequence[str]) -> list[str]:
        """`command`, run inside the cgroups (a shell joins them, then execs it)."""
        script = " && ".join(["set -e", *self.join_steps()]) + ' && exec "$@"'
        return ["sh", "-c", script, "sh", *command]

    def oom_killed(self) -> bool:
        """The kernel killed a process of this cgroup for memory."""
        if self.memory is None:
            return False
        with contextlib.suppress(OSError, ValueError):
            for line in (self.memory / "memory.oom_control").read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1]) > 0
            return int((self.memory / "memory.failcnt").read_text()) > 0
        return False

    def remove(self) -> None:
        """Remove both (once no process is left in them)."""
        for path in self._paths:
            with contextlib.suppress(OSError):
                path.rmdir()


def _remove_orphans(*parents: Path) -> None:
    """The cgroups of local stacks that ended without removing theirs (killed): their processes are gone."""
    for parent in parents:
        for found in parent.glob("kie2s3-*-*"):
            if not _alive(int(found.name.split("-")[1])):
                with contextlib.suppress(OSError):  # not empty: a process of it still runs
                    found.rmdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _launcher(isolated: Isolation, cgroup: Cgroup | None, package: Package) -> list[str]:
    """The commands before the interpreter: join the cgroups, then a private mount namespace where
    all is read-only but /tmp (the package and layer too, even under /tmp)."""
    steps = cgroup.join_steps() if cgroup else []
    if isolated.namespace:
        steps += [
            "mount --bind /tmp /tmp",
            "mount -o remount,bind,ro /",
            "if grep -q ' /dev/shm ' /proc/self/mounts; then mount -o remount,bind,ro /dev/shm; fi",
        ]
        for directory in (package.code, package.layer):
            quoted = shlex.quote(str(directory))
            steps += [f"mount --bind {quoted} {quoted}", f"mount -o remount,bind,ro {quoted}"]
    if not steps:
        return []
    script = " && ".join(["set -e", *steps]) + ' && exec "$@"'
    unshare = ["unshare", "--mount", "--propagation", "private"] if isolated.namespace else []
    return [*unshare, "sh", "-c", script, "sh"]


# ---------------------------------------------------------------------------------------------- the Runtime API


@dataclass
class _Invocation:
    request_id: str
    event: bytes
    timeout_seconds: float
    handed_at: float | None = None  # when the runtime took it (the timeout counts from there)
    outcome: tuple[str, Any] | None = None  # ("response", result) or ("error", document)
    done: threading.Event = field(default_factory=threading.Event)


class _RuntimeApi(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, config: FunctionConfig) -> None:
        super().__init__(("127.0.0.1", 0), _RuntimeHandler)
        self.config = config
        self.pending: queue.Queue[_Invocation | None] = queue.Queue()
        self.current: _Invocation | None = None
        self.ready = threading.Event()  # the runtime asked for its first event: init is done
        self.init_error: dict[str, Any] | None = None

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A runtime killed mid-request (a timeout, its memory) is no error of the API's."""
        return

    @property
    def address(self) -> str:
        """host:port, as AWS_LAMBDA_RUNTIME_API gives it."""
        return f"127.0.0.1:{self.server_address[1]}"


class _RuntimeHandler(BaseHTTPRequestHandler):
    server: _RuntimeApi

    def log_message(self, format: str, *args: Any) -> None:  # the base class's name
        return

    def _answer(self, status: int, body: bytes = b"{}", headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path != f"/{API_VERSION}/runtime/invocation/next":
            self._answer(404)
            return
        api = self.server
        api.ready.set()
        invocation = api.pending.get()
        if invocation is None:  # the container stops
            self._answer(410)
            return
        invocation.handed_at = time.monotonic()
        api.current = invocation
        deadline_ms = int((time.time() + invocation.timeout_seconds) * 1000)
        self._answer(
            200,
            invocation.event,
            {
                "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": api.config.arn,
                "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
                "Content-Type": "application/json",
            },
        )

    def do_POST(self) -> None:
        api = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = self.path.strip("/").split("/")
        document = json.loads(body or b"null")
        if parts[2:] == ["init", "error"]:
            api.init_error = document
            api.ready.set()
            self._answer(202)
            return
        invocation = api.current
        if len(parts) == 5 and invocation is not None and parts[3] == invocation.request_id:
            too_large = response_error(len(body)) if parts[4] == "response" else None
            if too_large is not None:  # Lambda fails the invocation, and tells the runtime so
                failed = {"errorType": too_large.error_type, "errorMessage": too_large.message}
                invocation.outcome = ("error", failed)
                invocation.done.set()
                self._answer(413, json.dumps(failed).encode())
                return
            invocation.outcome = (parts[4], document)
            invocation.done.set()
            self._answer(202)
            return
        self._answer(400)


# ---------------------------------------------------------------------------------------------- containers


class Container:
    """One execution environment: a process of the package, its Runtime API, its limits."""

    def __init__(
        self, config: FunctionConfig, package: Package, output: IO[Any], isolated: Isolation
    ) -> None:
        self.config = config
        self.api = _RuntimeApi(config)
        threading.Thread(target=self.api.serve_forever, daemon=True).start()
        self.cgroup = Cgroup(config.memory_mb, config.cpus) if isolated.cgroups else None
        self._rss_exceeded = False
        self._stopped = False
        command = [interpreter(), "-I", "-S", "-u", str(BOOTSTRAP), "--layer", str(package.layer)]
        self.process = subprocess.Popen(
            [*_launcher(isolated, self.cgroup, package), *command],
            env=lambda_environment(config, package, self.api.address),
            cwd=package.code,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed as one
        )
        if self.cgroup is None:
            threading.Thread(target=self._watch_memory, daemon=True).start()

    @property
    def alive(self) -> bool:
        """The process runs."""
        return self.process.poll() is None

    def wait_ready(self, timeout: float = INIT_TIMEOUT_SECONDS) -> None:
        """Wait for the init (the handler's import); FunctionError when it fails or the process dies."""
        deadline = time.monotonic() + timeout
        while not self.api.ready.wait(0.05):
            if not self.alive:
                raise self._exit_error()
            if time.monotonic() > deadline:
                self.stop()
                raise FunctionError("Runtime.InitTimeout", f"init not done within {timeout:.0f} s")
        if self.api.init_error is not None:
            error = self.api.init_error
            self.stop()
            raise FunctionError(str(error.get("errorType")), str(error.get("errorMessage")))

    def invoke(self, event: Any) -> Any:
        """The handler's result for `event`; FunctionError when it raised, timed out or was killed."""
        self.wait_ready()
        timeout = self.config.timeout_seconds
        invocation = _Invocation(uuid.uuid4().hex, check_request(encoded(event)), timeout)
        self.api.pending.put(invocation)
        while not invocation.done.wait(WATCHDOG_SECONDS):
            if not self.alive:
                raise self._exit_error()
            if invocation.handed_at is not None and time.monotonic() - invocation.handed_at > timeout:
                self.stop()
                raise FunctionError("Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds")
        assert invocation.outcome is not None
        kind, document = invocation.outcome
        if kind == "error":
            raise FunctionError(str(document.get("errorType")), str(document.get("errorMessage")))
        return document

    def _exit_error(self) -> FunctionError:
        code = self.process.wait()
        oom = self._rss_exceeded or (self.cgroup is not None and self.cgroup.oom_killed())
        self.stop()
        if oom:
            return FunctionError(
                "Runtime.OutOfMemory",
                f"Runtime exited with error: signal: killed (over {self.config.memory_mb} MB)",
            )
        how = (
            f"signal: {signal.Signals(-code).name.removeprefix('SIG').lower()}"
            if code < 0
            else f"exit status {code}"
        )
        return FunctionError("Runtime.ExitError", f"Runtime exited with error: {how}")

    def _watch_memory(self) -> None:
        """Where no memory cgroup is available: kill the process past its memory, as Lambda does."""
        limit_kib = self.config.memory_mb * 1024
        while self.alive:
            with contextlib.suppress(OSError, ValueError, IndexError):
                status = Path(f"/proc/{self.process.pid}/status").read_text()
                rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
                if rss > limit_kib:
                    self._rss_exceeded = True
                    self._kill()
                    return
            time.sleep(WATCHDOG_SECONDS)

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def stop(self) -> None:
        """Kill the process (as Lambda ends an environment) and release its Runtime API and cgroups."""
        if self._stopped:
            return
        self._stopped = True
        if self.alive:
            self._kill()
        self.process.wait()
        self.api.pending.put(None)
        self.api.shutdown()
        self.api.server_close()
        if self.cgroup is not None:
            self.cgroup.remove()


class Function:
    """A function's execution environments: an idle one takes the next invocation, else a new one
    starts (a cold start); one killed or timed out is dropped."""

    def __init__(
        self, config: FunctionConfig, package: Package, output: IO[Any], isolated: Isolation
    ) -> None:
        self.config = config
        self.package = package
        self.output = output
        self.isolated = isolated
        self._idle: list[Container] = []
        self._all: list[Container] = []
        self._lock = threading.Lock()
        self.cold_starts = 0

    def _take(self) -> Container:
        with self._lock:
            while self._idle:
                container = self._idle.pop()
                if container.alive:
                    return container
            self.cold_starts += 1
            container = Container(self.config, self.package, self.output, self.isolated)
            self._all.append(container)
            return container

    def warm(self) -> None:
        """Start an environment and wait for its init, before the first invocation needs it."""
        container = self._take()
        try:
            container.wait_ready()
        finally:
            self._give(container)

    def _give(self, container: Container) -> None:
        with self._lock:
            if container.alive:
                self._idle.append(container)
            elif container in self._all:
                self._all.remove(container)

    def invoke(self, event: Any, context: Any = None) -> Any:
        """Invoke with `event` (`context` is the runtime's to make: ignored); FunctionError on failure."""
        container = self._take()
        try:
            return container.invoke(event)
        finally:
            self._give(container)

    def stop(self) -> None:
        """Stop every environment."""
        with self._lock:
            containers, self._all, self._idle = self._all, [], []
        for container in containers:
            container.stop()


class Functions:
    """The template's functions, each run from the package in environments of its own."""

    def __init__(
        self,
        template: Mapping[str, Any],
        environment: Mapping[str, str],
        package: Package,
        output: IO[Any] | None = None,
    ) -> None:
        self.template = template
        self.environment = dict(environment)
        self.package = package
        self.output = output if output is not None else sys.stdout
        self.isolated = isolation()
        self._functions: dict[str, Function] = {}
        self._lock = threading.Lock()

    def __getitem__(self, logical_id: str) -> Function:
        with self._lock:
            if logical_id not in self._functions:
                self._functions[logical_id] = Function(
                    function_config(self.template, logical_id, self.environment),
                    self.package,
                    self.output,
                    self.isolated,
                )
            return self._functions[logical_id]

    def warm(self, *logical_ids: str) -> None:
        """Start an environment of each, all at once, and wait for their inits; FunctionError when
        one fails (a module the layer lacks, say)."""
        if not logical_ids:
            return
        with ThreadPoolExecutor(max_workers=len(logical_ids)) as pool:
            for warmed in [pool.submit(self[f].warm) for f in logical_ids]:
                warmed.result()

    def stop(self) -> None:
        """Stop every environment of every function."""
        with self._lock:
            functions = list(self._functions.values())
        for function in functions:
            function.stop()

    def __enter__(self) -> "Functions":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def function_config(
    template: Mapping[str, Any], logical_id: str, environment: Mapping[str, str]
) -> FunctionConfig:
    """A function's name, handler, MemorySize and Timeout from the template (its own, else the Globals'),
    with `environment`."""
    from devstack.serve import function_context

    context = function_context(template, logical_id)
    props = template["Resources"][logical_id].get("Properties") or {}
    defaults = (template.get("Globals") or {}).get("Function") or {}
    handler = str(props.get("Handler", defaults.get("Handler", "app.lambda_handler")))
    region = environment.get("AWS_REGION", "us-east-1")
    return FunctionConfig(
        name=context.function_name,
        handler=handler,
        memory_mb=context.memory_limit_in_mb,
        timeout_seconds=context.timeout_seconds,
        environment=environment,
        region=region,
    )
