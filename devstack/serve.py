"""The processes of a `make up` stack (started by `devstack.up`, never by hand).

`python -m devstack.serve --state-dir D` is the supervisor: it builds the package (`devstack.package`),
starts moto (its own process) and the kie.ai emulator, provisions them from template.yaml as every
local run does, serves the HTTP API over real HTTP (`devstack.local_api`; the API function runs from
the package in processes of its own under Lambda's limits, `devstack.sandbox`) and starts the
functions processes; it records everything in D/state.json and stops it all on SIGTERM.

`python -m devstack.serve --functions --state-dir D` is the functions process, Lambda's side of the
functions it invokes (each runs from the package, in sandboxed processes of its own): the copy
worker, polling the copy queue as Lambda's SQS event source mapping does (`SqsPoller`, one message
per batch, failed messages visible again after a few seconds instead of the queue's 90 minutes),
with ForwardUrl set the forward function on the forward queue (its own delays kept), and the
reconciler on the template's schedule, one invocation at a time. `--events` is the events
function's process beside it (a function of its own, as deployed: it never holds a copy back),
reading the ledger's stream as its mapping does (`StreamPoller`; the events reach the queue
`make events` reads). SIGTERM ends it at once, its functions' processes killed (a copy in flight
ends as a killed Lambda's would); it also stops by itself when the supervisor is gone.

The kie.ai emulator serves every URL of the events/ samples, and its record-info knows the task of
every Market sample (a Market task's record-info `data` is its callback's `data`).
"""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

from devstack.cli import Parser, run
from devstack.running import MARKER_ENV, REPO_ROOT, read_state, write_state

if TYPE_CHECKING:
    from devstack.lambda_runtime import LambdaContext, SqsPoller
    from devstack.local_api import Authorize
    from devstack.running import StackState
    from devstack.sandbox import Functions
    from devstack.stack import Stack

# The processes beside the supervisor: name (its pid's, its log's) -> its command-line flag.
FUNCTION_PROCESSES: Final = {"worker": "--functions", "events": "--events"}
# How often the events function's poller reads the stream when it is idle (Lambda's: 4 times a second).
STREAM_POLL_SECONDS: Final = 0.25
# Failed copy jobs are visible again after this many seconds (Lambda's mapping waits for the queue's
# 90-minute visibility timeout: far too long to watch a retry locally).
RETRY_DELAY_SECONDS: Final = 5
STARTUP_TIMEOUT_SECONDS: Final = 60.0
# The HTTP API's requests run in up to this many of the function's environments at once (each a
# sandboxed process, devstack.sandbox): Lambda would start one per concurrent request, up to the
# account's concurrency; a few keep a local stack's memory in bounds.
API_CONCURRENCY: Final = 4
# AUTH=iam: the credentials the local stack issues, as an AWS shared credentials file in its state directory.
CREDENTIALS_FILE: Final = "aws-credentials"
_RATE: Final = re.compile(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)")
_UNIT_SECONDS: Final = {"minute": 60, "hour": 3600, "day": 86400}


class _Stop:
    """Set by SIGTERM or SIGINT."""

    def __init__(self) -> None:
        self.event = threading.Event()
        signal.signal(signal.SIGTERM, self._set)
        signal.signal(signal.SIGINT, self._set)

    def _set(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()


def _say(text: str) -> None:
    print(f"[local stack] {time.strftime('%H:%M:%S')} {text}", flush=True)


# ---------------------------------------------------------------------------------------------- the template


def function_context(template: Mapping[str, Any], logical_id: str) -> "LambdaContext":
    """A context for one invocation of a function: its local name, Timeout and MemorySize (the
    function's own, else the Globals', else Lambda's defaults: 3 s, 128 MB)."""
    from devstack.lambda_runtime import LambdaContext

    props = template["Resources"][logical_id].get("Properties") or {}
    defaults = (template.get("Globals") or {}).get("Function") or {}
    timeout = props.get("Timeout", defaults.get("Timeout"))
    memory = props.get("MemorySize", defaults.get("MemorySize"))
    from devstack.logs import LOCAL_NAME_PREFIX, function_name

    return LambdaContext(
        function_name=f"{LOCAL_NAME_PREFIX}{function_name(logical_id)}",
        timeout_seconds=float(timeout) if isinstance(timeout, int | float) else 3.0,
        memory_limit_in_mb=int(memory) if isinstance(memory, int) else 128,
    )


def schedule_seconds(expression: str) -> float:
    """The period of a `rate(…)` schedule expression in seconds."""
    found = _RATE.fullmatch(expression.strip())
    if found is None:
        raise ValueError(f"schedule {expression!r}: only rate(N minutes|hours|days) runs locally")
    return float(int(found.group(1)) * _UNIT_SECONDS[found.group(2).removesuffix("s")])


def scheduled_functions(template: Mapping[str, Any]) -> list[tuple[str, float, dict[str, Any]]]:
    """(logical id, period in seconds, input event) of every Schedule/ScheduleV2 event of the template."""
    found = []
    for logical_id, resource in (template.get("Resources") or {}).items():
        for event in ((resource.get("Properties") or {}).get("Events") or {}).values():
            if event.get("Type") in ("Schedule", "ScheduleV2"):
                props = event["Properties"]
                found.append(
                    (logical_id, schedule_seconds(props["ScheduleExpression"]), json.loads(props["Input"]))
                )
    return found


def sqs_function(template: Mapping[str, Any]) -> str:
    """The logical id of the function the copy queue triggers."""
    for logical_id, resource in (template.get("Resources") or {}).items():
        for event in ((resource.get("Properties") or {}).get("Events") or {}).values():
            if event.get("Type") == "SQS":
                return str(logical_id)
    raise ValueError("the template has no SQS-triggered function")


def sqs_functions(template: Mapping[str, Any], parameters: Mapping[str, str]) -> list[tuple[str, str]]:
    """(function, environment variable of its queue's URL) of each SQS-triggered function these
    parameter values create (a function whose Condition is false is left out, as CloudFormation does)."""
    from devstack.template import Resolver

    resolver = Resolver(template, parameters)
    variables = (
        (template.get("Globals") or {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    )
    found = []
    for logical_id, resource in (template.get("Resources") or {}).items():
        if "Condition" in resource and not resolver.condition(str(resource["Condition"])):
            continue
        for event in ((resource.get("Properties") or {}).get("Events") or {}).values():
            if event.get("Type") != "SQS":
                continue
            queue = event["Properties"]["Queue"]["Fn::GetAtt"][0]
            [variable] = [name for name, value in variables.items() if value == {"Ref": queue}]
            found.append((str(logical_id), variable))
    return found


def refuse_loop(forward_url: str, api_port: int) -> None:
    """UserError when FORWARD_URL is the local API itself (a loopback host on its port): every
    forwarded callback would come back as a callback."""
    from urllib3.util import parse_url

    from devstack.cli import UserError

    target = parse_url(forward_url)
    loopback = (target.host or "").strip("[]").lower() in ("127.0.0.1", "localhost", "::1", "0.0.0.0")
    if loopback and (target.port or {"http": 80, "https": 443}.get(target.scheme or "")) == api_port:
        raise UserError(
            f"FORWARD_URL {forward_url.split('?', 1)[0]} is the local API itself: forwarding there would "
            "loop; give your own handler's URL, or FORWARD=1 for the local forward receiver"
        )


# ---------------------------------------------------------------------------------------------- the supervisor


def serve_samples(emulator: Any) -> tuple[int, int]:
    """Serve every URL of the events/ samples; record-info knows each Market sample's task. (URLs, tasks)."""
    from devstack.callbacks import EVENTS_DIR, serve_result_files, urls_in
    from kie2s3.errors import BadRequestError
    from kie2s3.families import PARSERS, detect, task_id_of

    urls: set[str] = set()
    tasks = 0
    for path in sorted(EVENTS_DIR.glob("*.json")):
        with contextlib.suppress(ValueError):
            event = json.loads(path.read_text())
            urls.update(urls_in(event))
            body = json.loads(event.get("body") or "null")
            if isinstance(body, dict) and (parser := detect(body, PARSERS)) and parser.name == "market":
                with contextlib.suppress(BadRequestError):
                    emulator.add_task("market", task_id_of(body), body["data"])
                    tasks += 1
    serve_result_files(emulator, sorted(urls))
    return len(urls), tasks


def _ready_marker(name: str) -> str:
    return f"{name}.ready"


def _functions_process(directory: Path, env: Mapping[str, str], name: str) -> "subprocess.Popen[bytes]":
    """A functions process (`FUNCTION_PROCESSES`), logging to <name>.log; it touches <name>.ready."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", MARKER_ENV)}
    (directory / _ready_marker(name)).unlink(missing_ok=True)
    with (directory / f"{name}.log").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "devstack.serve", FUNCTION_PROCESSES[name], "--state-dir", str(directory)],
            env={
                **base,
                **env,
                "PYTHONPATH": f"{REPO_ROOT / 'src' / 'handler'}:{REPO_ROOT}",
                "PYTHONUNBUFFERED": "1",
            },
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop_process(process: "subprocess.Popen[bytes]", grace: float = 5.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _forward_target(forward_url: str, receiver: bool, api_port: int) -> tuple[str, Any]:
    """Where the stack forwards callbacks ("" for nowhere) and the local receiver it started, if any.

    UserError for a FORWARD_URL that is the local API itself (see `refuse_loop`).
    """
    if receiver:
        from devstack.forward_receiver import ForwardReceiver
        from devstack.stack import FORWARD_HMAC_KEY

        started = ForwardReceiver(FORWARD_HMAC_KEY, out=sys.stdout)
        return started.url(), started
    if forward_url:
        refuse_loop(forward_url, api_port)
    return forward_url, None


def _function_settings_error(env: Mapping[str, str]) -> str | None:
    """What the functions would refuse in their environment at start (a FORWARD_URL that loops, say)."""
    from kie2s3.errors import ConfigurationError
    from kie2s3.settings import Settings

    try:
        settings = Settings.from_environ(dict(env))
    except ConfigurationError as exc:
        return exc.reason
    return settings.forward_refusal


def _started(directory: Path, functions: Mapping[str, "subprocess.Popen[bytes]"], stop: _Stop) -> bool:
    """Wait until every functions process is ready; False when one exits first, or too long passes."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not all((directory / _ready_marker(name)).exists() for name in functions):
        if stop.event.is_set() or time.monotonic() > deadline:
            return False
        if any(process.poll() is not None for process in functions.values()):
            return False
        time.sleep(0.05)
    return True


def iam_check(directory: Path) -> "Authorize":
    """`make up AUTH=iam`: new credentials (keys, and keys with a session token) written to
    <directory>/aws-credentials as two profiles, and the API's check of SigV4 signatures against them."""
    from devstack.sigv4 import check, issue, write_credentials_file
    from devstack.template import REGION

    keys, session = issue(temporary=False), issue(temporary=True)
    write_credentials_file(directory / CREDENTIALS_FILE, keys, session)
    issued = {keys.access_key: keys, session.access_key: session}

    def authorize(method: str, url: str, headers: Mapping[str, str], body: bytes) -> str | None:
        return check(method=method, url=url, headers=headers, body=body, issued=issued, region=REGION)

    return authorize


def _failed(directory: Path, state: dict[str, Any], error: str, *, say: bool = True) -> int:
    """The stack did not start: the reason in its state (make up prints it), its exit status."""
    state["error"] = error
    write_state(directory, state)
    if say:
        _say(error)
    return 1


def _watch(
    directory: Path,
    state: dict[str, Any],
    stack: "Stack",
    functions: dict[str, "subprocess.Popen[bytes]"],
    stop: _Stop,
) -> None:
    """Until SIGTERM or moto's end: a functions process that exits is started anew."""
    while not stop.event.wait(0.5):
        if not stack.moto.running:
            _say("the AWS emulator (moto) exited: its data is gone, stopping the stack (make down)")
            return
        for name, process in functions.items():
            if process.poll() is not None:
                _say(f"the {name} process exited with code {process.returncode}: starting a new one")
                functions[name] = _functions_process(directory, stack.env, name)
                state["pids"][name] = functions[name].pid
                write_state(directory, state)


def supervise(
    directory: Path, port: int, mode: str, forward_url: str = "", receiver: bool = False, auth: str = "none"
) -> int:
    """Start the stack, record it, serve until SIGTERM (or until moto ends), then stop everything."""
    from devstack.aws import MotoServer
    from devstack.cli import UserError
    from devstack.local_api import LocalHttpApi, template_routes
    from devstack.package import build
    from devstack.sandbox import Functions
    from devstack.stack import FORWARD_HMAC_KEY, KIE_API_KEY, WEBHOOK_HMAC_KEY, local_stack
    from devstack.template import load_template

    stop = _Stop()
    state: dict[str, Any] = {
        "stackId": os.environ[MARKER_ENV],
        "pids": {"supervisor": os.getpid()},
        "ready": False,
        "mode": mode,
        "auth": auth,
    }
    write_state(directory, state)
    template = load_template()
    authorize = iam_check(directory) if auth == "iam" else None
    if authorize is not None:
        state["credentialsFile"] = str(directory / CREDENTIALS_FILE)
    try:
        api = LocalHttpApi(
            template_routes(template),
            lambda e, f: None,
            port=port,
            access_log=sys.stdout,
            authorize=authorize,
            concurrency=API_CONCURRENCY,
        )
    except OSError as exc:
        return _failed(
            directory,
            state,
            f"cannot listen on 127.0.0.1:{port} ({exc.strerror}): make up PORT=<another port>",
        )

    try:
        forward_url, forward_receiver = _forward_target(forward_url, receiver, api.port)
    except UserError as exc:
        return _failed(directory, state, str(exc))
    overrides = {"ForwardUrl": forward_url} if forward_url else None
    package = build()
    with (
        local_stack(copy_mode=mode, moto=MotoServer(log_dir=directory), overrides=overrides) as stack,
        Functions(template, stack.env, package, output=sys.stdout) as lambdas,
    ):
        state["pids"]["moto"] = stack.moto.pid
        state["parameters"] = stack.aws.parameters
        state["physicalIds"] = stack.aws.physical_ids  # the events process reads the stream's table
        state["package"] = {"code": str(package.code), "layer": str(package.layer)}
        state["functionEnv"] = stack.env  # what the functions processes give the functions
        write_state(directory, state)
        if refused := _function_settings_error(stack.env):
            return _failed(directory, state, f"the functions refuse their environment: {refused}", say=False)
        _say(lambdas.isolated.describe())
        api.invoke = lambda event, function: lambdas[function].invoke(event)

        served, tasks = serve_samples(stack.emulator)
        _say(
            f"kie.ai emulator serves {served} sample URLs; its record-info knows {tasks} Market sample tasks"
        )
        functions = {name: _functions_process(directory, stack.env, name) for name in FUNCTION_PROCESSES}
        state["pids"].update({name: process.pid for name, process in functions.items()})
        write_state(directory, state)
        api.start()
        try:
            # The API function's first environment, while the functions processes start theirs: its
            # init before the first request (a package that cannot load stops `make up` here).
            lambdas.warm(*{route.function for route in template_routes(template)})
            if not _started(directory, functions, stop):
                message = "the functions did not start: see worker.log and events.log (make logs)"
                return _failed(directory, state, message, say=False)
            state.update(
                ready=True,
                apiUrl=api.url,
                port=api.port,
                bucket=stack.bucket,
                awsUrl=stack.moto.endpoint_url,
                kieUrl=stack.emulator.base_url,
                kieApiKey=KIE_API_KEY,
                hmacKey=WEBHOOK_HMAC_KEY,
                forwardUrl=forward_url,
                forwardReceiver=forward_receiver is not None,
                forwardKey=FORWARD_HMAC_KEY,
                eventsQueueUrl=stack.events_queue_url,
                env=stack.env,
                startedAt=time.time(),
            )
            write_state(directory, state)
            _say(f"ready: API {api.url}, bucket {stack.bucket}, {mode} mode")
            _watch(directory, state, stack, functions, stop)
        finally:
            state["ready"] = False
            with contextlib.suppress(OSError):  # its directory removed under it: stop all the same
                write_state(directory, state)
            _say("stopping")
            api.stop()
            for process in functions.values():
                _stop_process(process)
            if forward_receiver is not None:
                forward_receiver.stop()
    _say("stopped")
    return 0


# ---------------------------------------------------------------------------------------------- the functions


# Functions that pace their own retries (ChangeMessageVisibility): their delays are kept, as on Lambda.
_OWN_DELAYS: Final = frozenset({"ForwardFunction"})


def _pollers(
    template: Mapping[str, Any], parameters: Mapping[str, str], sqs: Any, lambdas: "Functions"
) -> list["SqsPoller"]:
    """A poller for each SQS-triggered function the stack's parameters create (the copy worker first)."""
    from devstack.lambda_runtime import SqsPoller

    pollers = []
    for function, variable in sqs_functions(template, parameters):
        context = function_context(template, function)
        url = os.environ[variable]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        pollers.append(
            SqsPoller(
                sqs=sqs,
                queue_url=url,
                queue_arn=arn,
                retry_delay=None if function in _OWN_DELAYS else RETRY_DELAY_SECONDS,
                timeout_seconds=context.timeout_seconds,
                function_name=context.function_name,
                memory_limit_in_mb=context.memory_limit_in_mb,
                invoker=lambdas[function].invoke,
            )
        )
    return pollers


def _queue_of(poller: "SqsPoller") -> str:
    """The queue a poller reads, as people call it: "copy" for ...-CopyQueue, "forward" for ...-ForwardQueue."""
    name = poller.queue_url.rstrip("/").rsplit("/", 1)[-1].rsplit("-", 1)[-1].lower()
    return name.removesuffix("queue") or name


def _poll(pollers: Sequence["SqsPoller"]) -> None:
    """One round: each queue once (the first with a long poll of 1 s when the others were idle)."""
    from botocore.exceptions import BotoCoreError, ClientError

    for n, poller in enumerate(pollers):
        try:
            if poller.poll_once(wait_seconds=1 if n == 0 else 0):
                _say(f"{poller.function_name}: one batch in {poller.invocation_seconds[-1] * 1000:.0f} ms")
        except (BotoCoreError, ClientError) as exc:
            _say(f"the queue of {poller.function_name} cannot be read ({exc}); trying again")
            time.sleep(1)


def _stack_functions(directory: Path, template: Mapping[str, Any]) -> tuple["StackState", "Functions"]:
    """The stack's state and its functions, run from the package the supervisor built; SIGTERM stops
    them (their processes are killed, as Lambda's environments are) before this process ends."""
    from devstack.package import Package
    from devstack.sandbox import Functions

    state = read_state(directory)
    if state is None:
        raise RuntimeError(f"no state in {directory}: the supervisor starts this process")
    package = Package(Path(state.data["package"]["code"]), Path(state.data["package"]["layer"]))
    lambdas = Functions(template, state.data["functionEnv"], package, output=sys.stdout)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    return state, lambdas


def run_functions(directory: Path) -> int:
    """The SQS-triggered functions and the scheduled ones, until SIGTERM: each poller and schedule
    invokes its function's package in processes of their own (`devstack.sandbox`)."""
    import boto3

    from devstack.template import load_template

    template = load_template()
    state, lambdas = _stack_functions(directory, template)
    with lambdas:
        return _serve_functions(directory, template, state, lambdas, boto3.client("sqs"))


def _serve_functions(
    directory: Path, template: Mapping[str, Any], state: "StackState", lambdas: "Functions", sqs: Any
) -> int:
    pollers = _pollers(template, state.data.get("parameters") or {}, sqs, lambdas)
    lambdas.warm(*(function for function, _ in sqs_functions(template, state.data.get("parameters") or {})))
    schedules = [
        (logical_id, period, event, time.monotonic() + period)
        for logical_id, period, event in scheduled_functions(template)
    ]
    parent = os.getppid()
    (directory / _ready_marker("worker")).touch()
    every = ", ".join(
        f"{function_context(template, s[0]).function_name} every {s[1]:.0f} s" for s in schedules
    )
    polling = "; ".join(f"{p.function_name} polls the {_queue_of(p)} queue" for p in pollers)
    _say(f"{polling}; {every}")
    while True:  # until SIGTERM (its default action: a copy in flight ends as a killed Lambda's would)
        if os.getppid() != parent:
            _say("the supervisor is gone: stopping")
            break
        _poll(pollers)
        for n, (logical_id, period, event, due) in enumerate(schedules):
            if time.monotonic() >= due:
                schedules[n] = (logical_id, period, event, due + period)
                context = function_context(template, logical_id)
                try:
                    lambdas[logical_id].invoke(event, context)
                    _say(f"{context.function_name}: scheduled run done")
                except Exception as exc:  # as Lambda reports a failed invocation; the next one comes anyway
                    _say(f"{context.function_name}: scheduled run failed: {exc}")
    return 0


def run_events(directory: Path) -> int:
    """The events function over the ledger's stream, one invocation at a time, until SIGTERM."""
    import boto3

    from devstack.template import load_template, stream_mappings

    template = load_template()
    state, lambdas = _stack_functions(directory, template)
    function = stream_mappings(template)[0].function
    with lambdas:
        lambdas.warm(function)
        return _serve_stream(directory, template, state, lambdas[function].invoke, boto3)


def _serve_stream(
    directory: Path, template: Mapping[str, Any], state: "StackState", invoker: Any, boto3: Any
) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from devstack.stack import ledger_stream_poller
    from devstack.template import stream_mappings

    stream = ledger_stream_poller(
        state.physical_ids,
        lambda service: boto3.client(service),
        template=template,
        invoker=invoker,
    )
    name = function_context(template, stream_mappings(template)[0].function).function_name
    parent = os.getppid()
    (directory / _ready_marker("events")).touch()
    _say(f"{name} reads the ledger's stream")
    while os.getppid() == parent:  # until SIGTERM, or the supervisor is gone
        try:
            if records := stream.poll_once():
                _say(f"{name}: {records} ledger change(s); {stream.invoked} invocation(s) so far")
                continue
        except (BotoCoreError, ClientError) as exc:
            _say(f"the ledger's stream cannot be read ({exc}); trying again")
        time.sleep(STREAM_POLL_SECONDS)
    _say("the supervisor is gone: stopping")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The supervisor, or a functions process (`--functions`, `--events`)."""
    parser = Parser(prog="devstack.serve", description=__doc__)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mode", choices=("queue", "inline"), default="queue")
    parser.add_argument("--functions", action="store_true", help="run the functions process")
    parser.add_argument("--forward-url", default="", help="ForwardUrl: forward accepted callbacks there")
    parser.add_argument("--forward-receiver", action="store_true", help="forward to a local receiver")
    parser.add_argument("--events", action="store_true", help="run the events function's process")
    parser.add_argument("--auth", choices=("none", "iam"), default="none", help="iam: check SigV4 signatures")
    args = parser.parse_args(argv)
    directory = Path(args.state_dir)
    if args.functions:
        return run_functions(directory)
    if args.events:
        return run_events(directory)
    if read_state(directory) is not None:
        parser.error(f"{directory} already holds a stack's state: use `make up`, which checks it")
    try:
        return supervise(directory, args.port, args.mode, args.forward_url, args.forward_receiver, args.auth)
    except Exception as exc:  # the whole story goes to the log; `make up` shows the first line
        traceback.print_exc()
        state = read_state(directory)
        if state is not None:
            first = (str(exc).strip().splitlines() or [""])[0]
            write_state(directory, {**state.data, "ready": False, "error": f"{type(exc).__name__}: {first}"})
        return 1


if __name__ == "__main__":
    sys.exit(run(main))
