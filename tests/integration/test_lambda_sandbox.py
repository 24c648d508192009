"""The local stack's functions run as Lambda runs them: the package alone, under Lambda's limits.

Each test runs a real process of `devstack.sandbox` (python3.13 -I, the Runtime API on loopback,
the cgroups and the mount namespace): a probe handler that does what a function must not get away
with (allocate past its memory, run past its timeout, write outside /tmp, import what the layer
lacks), and shows that the limit bites as it would on Lambda.
"""

import shutil
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from devstack.lambda_runtime import SqsPoller, http_event
from devstack.local_api import MAX_PAYLOAD_BYTES, LocalHttpApi, Route
from devstack.package import CODE_URI, Package, build
from devstack.payload import MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES
from devstack.running import REPO_ROOT
from devstack.sandbox import (
    MB_PER_VCPU,
    Function,
    FunctionConfig,
    FunctionError,
    Functions,
    Isolation,
    isolation,
)
from devstack.stack import Stack
from devstack.template import load_template

PROBE = """
import os, sys, time

def handler(event, context):
    if "Records" in event:  # an SQS batch: never done in time
        time.sleep(60)
    if event.get("rawPath", "").startswith("/naps/"):  # GET /naps/<s>: the container's pid after s seconds
        time.sleep(float(event["pathParameters"]["seconds"]))
        return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": str(os.getpid())}
    if "rawPath" in event:  # through the HTTP API: GET /answers/<n> answers a body of n bytes
        body = "x" * int(event["pathParameters"]["size"])
        return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": body}
    match event["do"]:
        case "env":
            return {
                "environ": dict(os.environ),
                "path": sys.path,
                "memory": context.memory_limit_in_mb,
                "remaining_ms": context.get_remaining_time_in_millis(),
                "name": context.function_name,
            }
        case "allocate":
            held = b"x" * (event["mb"] * 1024 * 1024)
            return len(held)
        case "sleep":
            time.sleep(event["seconds"])
            return "slept"
        case "spin":
            until = time.monotonic() + event["seconds"]
            while time.monotonic() < until:
                pass
            return time.process_time()
        case "write":
            try:
                with open(event["path"], "w") as out:
                    out.write("written")
            except OSError as exc:
                return exc.strerror
            return "written"
        case "raise":
            raise ValueError("the handler failed")
        case "answer":  # an answer whose JSON (a string: two quotes) is `bytes` long
            return "x" * (event["bytes"] - 2)
        case "size":
            return len(event["padding"])
"""


@pytest.fixture(scope="module")
def probe_package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    """A package whose code is the probe handler, with an empty layer."""
    root = tmp_path_factory.mktemp("probe")
    (root / "code").mkdir()
    (root / "code" / "probe.py").write_text(PROBE)
    (root / "layer" / "python").mkdir(parents=True)
    return Package(code=root / "code", layer=root / "layer")


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Any]:
    with (tmp_path / "function.log").open("w+") as out:
        yield out


def probe(package: Package, log: Any, *, memory_mb: int = 128, timeout: float = 10.0) -> Function:
    config = FunctionConfig(
        name=f"probe-{uuid.uuid4().hex[:8]}",
        handler="probe.handler",
        memory_mb=memory_mb,
        timeout_seconds=timeout,
        environment={"PROBE_SETTING": "from the template"},
    )
    return Function(config, package, log, isolation())


@pytest.fixture
def function(probe_package: Package, log: Any) -> Iterator[Function]:
    started = probe(probe_package, log)
    yield started
    started.stop()


def test_sandbox_environment_is_lambdas_and_nothing_of_the_host(
    function: Function, probe_package: Package, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIE2S3_HOST_ONLY", "never in a function")
    seen = function.invoke({"do": "env"})
    environ = seen["environ"]
    assert environ["AWS_LAMBDA_FUNCTION_NAME"] == function.config.name == seen["name"]
    assert environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128" == seen["memory"]
    assert environ["AWS_REGION"] == environ["AWS_DEFAULT_REGION"] == "us-east-1"
    assert environ["LAMBDA_TASK_ROOT"] == str(probe_package.code)
    assert environ["_HANDLER"] == "probe.handler"
    assert environ["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.13"
    assert environ["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{function.config.name}"
    assert environ["PROBE_SETTING"] == "from the template"
    assert environ["_X_AMZN_TRACE_ID"].startswith("Root=1-")
    assert "KIE2S3_HOST_ONLY" not in environ
    assert "VIRTUAL_ENV" not in environ
    assert "HOME" not in environ
    assert 0 < seen["remaining_ms"] <= 10_000
    # The package, the layer (as /opt), the standard library: no site-packages, no development tools.
    layer = [str(p) for p in probe_package.layer_paths]
    assert seen["path"][:3] == [str(probe_package.code), *layer]
    assert [p for p in seen["path"][3:] if "site-packages" in p or str(REPO_ROOT) in p] == []
    assert sys.prefix not in seen["path"][3:]  # the venv's python is not the one that runs


def test_sandbox_memory_size_is_a_hard_limit(probe_package: Package, log: Any) -> None:
    function = probe(probe_package, log, memory_mb=128)
    try:
        assert function.invoke({"do": "allocate", "mb": 16}) == 16 * 1024 * 1024
        with pytest.raises(FunctionError) as killed:
            function.invoke({"do": "allocate", "mb": 256})
        assert killed.value.error_type == "Runtime.OutOfMemory"
        assert "signal: killed" in killed.value.message
        # The environment is gone; the next invocation starts a new one, as Lambda's does.
        assert function.invoke({"do": "allocate", "mb": 16}) == 16 * 1024 * 1024
        assert function.cold_starts == 2
    finally:
        function.stop()


def test_sandbox_memory_watchdog_kills_where_no_cgroup_is_available(probe_package: Package, log: Any) -> None:
    config = FunctionConfig("probe-watchdog", "probe.handler", 128, 10.0, {})
    function = Function(config, probe_package, log, Isolation(cgroups=False, namespace=True))
    try:
        assert function.invoke({"do": "allocate", "mb": 16}) == 16 * 1024 * 1024
        with pytest.raises(FunctionError) as killed:
            function.invoke({"do": "allocate", "mb": 256})
        assert killed.value.error_type == "Runtime.OutOfMemory"
    finally:
        function.stop()


def test_sandbox_timeout_kills_the_invocation(probe_package: Package, log: Any) -> None:
    function = probe(probe_package, log, timeout=1.0)
    try:
        function.warm()
        started = time.monotonic()
        with pytest.raises(FunctionError) as timed_out:
            function.invoke({"do": "sleep", "seconds": 30})
        assert time.monotonic() - started < 5
        assert timed_out.value.error_type == "Sandbox.Timedout"
        assert timed_out.value.message == "Task timed out after 1.00 seconds"
        assert function.invoke({"do": "sleep", "seconds": 0}) == "slept"
        assert function.cold_starts == 2
    finally:
        function.stop()


def test_sandbox_cpu_is_the_share_lambda_gives_the_memory(probe_package: Package, log: Any) -> None:
    function = probe(probe_package, log, memory_mb=128)  # 128 / 1,769 of a vCPU
    try:
        function.warm()
        cpu_seconds = function.invoke({"do": "spin", "seconds": 2.0})
        # Unlimited, a busy loop of 2 s takes 2 s of CPU; at 7 % of a vCPU, about 0.15 s (plus its init).
        assert cpu_seconds < 2.0 * 128 / MB_PER_VCPU + 0.5
    finally:
        function.stop()


def test_sandbox_answer_over_six_mb_fails_the_invocation_as_lambda_does(function: Function) -> None:
    assert len(function.invoke({"do": "answer", "bytes": MAX_RESPONSE_BYTES})) == MAX_RESPONSE_BYTES - 2
    with pytest.raises(FunctionError) as too_large:
        function.invoke({"do": "answer", "bytes": MAX_RESPONSE_BYTES + 1})
    assert too_large.value.error_type == "Function.ResponseSizeTooLarge"
    assert too_large.value.message == (
        f"Response payload size ({MAX_RESPONSE_BYTES + 1} bytes) exceeded maximum allowed payload size"
        f" ({MAX_RESPONSE_BYTES} bytes)."
    )
    assert function.invoke({"do": "sleep", "seconds": 0}) == "slept"  # the environment serves on


def test_sandbox_event_over_six_mb_is_refused_before_the_function_runs(function: Function) -> None:
    # {"do": "size", "padding": "…"}: 29 bytes of JSON around the padding.
    fits = MAX_REQUEST_BYTES - 1 - 29
    assert function.invoke({"do": "size", "padding": "p" * fits}) == fits
    with pytest.raises(FunctionError) as too_large:
        function.invoke({"do": "size", "padding": "p" * (fits + 1)})
    assert too_large.value.error_type == "RequestEntityTooLargeException"
    assert too_large.value.message == (
        f"Request must be smaller than {MAX_REQUEST_BYTES} bytes for the InvokeFunction operation"
    )
    assert function.cold_starts == 1


def _fetch(url: str, data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_sandbox_behind_the_local_api_payload_limits_are_the_gateways_answers(function: Function) -> None:
    routes = [
        Route("GET", "/answers/{size}", "Probe", "NONE"),
        Route("POST", "/answers/{size}", "Probe", "NONE"),
    ]
    api = LocalHttpApi(routes, lambda event, name: function.invoke(event)).start()
    try:
        assert _fetch(f"{api.url}/answers/1000") == (200, b"x" * 1000)
        # An answer over Lambda's 6 MB: the function ran, its answer is lost, the gateway says 502.
        too_large = f"{api.url}/answers/{MAX_RESPONSE_BYTES}"
        assert _fetch(too_large) == (502, b'{"message": "Internal Server Error"}')
        # A body over the gateway's own 10 MB never reaches the function.
        body = b"{" + b" " * MAX_PAYLOAD_BYTES + b"}"
        assert _fetch(f"{api.url}/answers/1", body) == (413, b'{"message": "Request Entity Too Large"}')
        # Between the two, the gateway takes it but Lambda refuses the event: the gateway's 500.
        body = b"{" + b" " * MAX_REQUEST_BYTES + b"}"
        assert _fetch(f"{api.url}/answers/1", body) == (500, b'{"message": "Internal Server Error"}')
    finally:
        api.stop()


def test_sandbox_behind_the_local_api_concurrent_requests_run_in_containers_of_their_own(
    function: Function,
) -> None:
    # As Lambda scales a function: three requests at once, three environments (one would answer
    # them one after another from one process).
    api = LocalHttpApi(
        [Route("GET", "/naps/{seconds}", "Probe", "NONE")],
        lambda event, name: function.invoke(event),
        concurrency=3,
    ).start()
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            answers = list(pool.map(lambda _: _fetch(f"{api.url}/naps/1.5"), range(3)))
    finally:
        api.stop()
    assert [status for status, _ in answers] == [200, 200, 200]
    assert len({pid for _, pid in answers}) == 3
    assert function.cold_starts == 3


def test_sandbox_only_tmp_is_writable(function: Function, probe_package: Package) -> None:
    read_only = "Read-only file system"
    assert function.invoke({"do": "write", "path": str(probe_package.code / "new.py")}) == read_only
    assert function.invoke({"do": "write", "path": str(probe_package.code / "probe.py")}) == read_only
    assert function.invoke({"do": "write", "path": str(probe_package.layer / "python" / "x.py")}) == read_only
    outside = REPO_ROOT / f"sandbox-probe-{uuid.uuid4().hex}"
    assert function.invoke({"do": "write", "path": str(outside)}) == read_only
    assert not outside.exists()
    in_tmp = Path("/tmp") / f"sandbox-probe-{uuid.uuid4().hex}"
    try:
        assert function.invoke({"do": "write", "path": str(in_tmp)}) == "written"
        assert in_tmp.read_text() == "written"
    finally:
        in_tmp.unlink(missing_ok=True)


def test_sandbox_handler_error_is_lambdas(function: Function, log: Any) -> None:
    with pytest.raises(FunctionError) as failed:
        function.invoke({"do": "raise"})
    assert (failed.value.error_type, failed.value.message) == ("ValueError", "the handler failed")
    assert function.invoke({"do": "sleep", "seconds": 0}) == "slept"  # the environment lives on
    assert function.cold_starts == 1
    log.seek(0)
    assert "[ERROR] ValueError: the handler failed" in log.read()


def test_sandbox_timed_out_batch_is_delivered_again(stack: Stack, probe_package: Package, log: Any) -> None:
    sqs = stack.client("sqs")
    url = sqs.create_queue(QueueName=f"sandbox-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.send_message(QueueUrl=url, MessageBody="a copy job")
    function = probe(probe_package, log, timeout=1.0)
    try:
        poller = SqsPoller(sqs=sqs, queue_url=url, queue_arn=arn, retry_delay=0, invoker=function.invoke)
        assert poller.poll_once(wait_seconds=0) == 1  # the function timed out on it
        again = sqs.receive_message(
            QueueUrl=url, WaitTimeSeconds=1, AttributeNames=["ApproximateReceiveCount"]
        )
        [message] = again["Messages"]
        assert message["Body"] == "a copy job"
        assert message["Attributes"]["ApproximateReceiveCount"] == "2"
    finally:
        function.stop()
        sqs.delete_queue(QueueUrl=url)


def _app_config(log: Any) -> FunctionConfig:
    return FunctionConfig(
        name="kie2s3-package-probe",
        handler="app.lambda_handler",
        memory_mb=512,
        timeout_seconds=29,
        environment={"POWERTOOLS_SERVICE_NAME": "kie2s3-local"},
    )


def test_package_runs_the_handler_on_its_layer(log: Any) -> None:
    function = Function(_app_config(log), build(), log, isolation())
    try:
        answer = function.invoke(http_event("GET", "/no-such-route"))
        assert answer["statusCode"] == 404
    finally:
        function.stop()


@pytest.fixture(scope="module")
def missing_module_package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    """src/handler, its app.py importing hypothesis: in the development environment (the in-process
    run imports it), not in the layer."""
    __import__("hypothesis")
    code = tmp_path_factory.mktemp("missing") / "handler"
    shutil.copytree(CODE_URI, code, ignore=shutil.ignore_patterns("__pycache__"))
    app = code / "app.py"
    app.write_text(
        app.read_text().replace("from typing import Any\n", "from typing import Any\n\nimport hypothesis\n")
    )
    return build(code=code)


def test_package_module_absent_from_the_layer_fails_as_on_lambda(
    missing_module_package: Package, log: Any
) -> None:
    function = Function(_app_config(log), missing_module_package, log, isolation())
    try:
        with pytest.raises(FunctionError) as failed:
            function.invoke(http_event("GET", "/no-such-route"))
        assert failed.value.error_type == "Runtime.ImportModuleError"
        assert failed.value.message == "Unable to import module 'app': No module named 'hypothesis'"
    finally:
        function.stop()


def test_package_that_cannot_load_stops_the_stack_at_start(missing_module_package: Package, log: Any) -> None:
    # make up and make demo warm their functions first: the error is theirs, not the first request's.
    with (
        Functions(load_template(), {}, missing_module_package, log) as functions,
        pytest.raises(FunctionError) as failed,
    ):
        functions.warm("ApiFunction", "EventsFunction")
    assert failed.value.error_type == "Runtime.ImportModuleError"


def test_package_is_built_once_per_content(tmp_path: Path) -> None:
    code, requirements, cache = tmp_path / "code", tmp_path / "requirements.txt", tmp_path / "cache"
    code.mkdir()
    (code / "app.py").write_text("def lambda_handler(event, context):\n    return 1\n")
    requirements.write_text("six==1.17.0\n")
    first = build(code=code, requirements=requirements, cache=cache)
    assert (first.layer / "python" / "six.py").is_file()
    assert (first.code / "__pycache__").is_dir()  # compiled: the functions cannot write bytecode there
    assert not (first.code / "app.py").stat().st_mode & 0o222
    assert build(code=code, requirements=requirements, cache=cache) == first
    (code / "app.py").write_text("def lambda_handler(event, context):\n    return 2\n")
    changed = build(code=code, requirements=requirements, cache=cache)
    assert (changed.layer, changed.code != first.code) == (first.layer, True)
    assert "return 2" in (changed.code / "app.py").read_text()
