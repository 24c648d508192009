"""The local package and its runtime: what they are built from, and what the runtime may import."""

import ast
import re
import sys
from pathlib import Path

from devstack import lambda_bootstrap
from devstack.package import PLATFORMS, REQUIREMENTS, RUNTIME_PROVIDED, Package, host_platform
from devstack.sandbox import MB_PER_VCPU, FunctionConfig, function_config, lambda_environment
from devstack.template import load_template


def _imported(path: str) -> set[str]:
    tree = ast.parse(Path(path).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_bootstrap_imports_the_standard_library_only() -> None:
    imported = _imported(lambda_bootstrap.__file__)
    assert imported
    assert sorted(imported - sys.stdlib_module_names) == []


def test_layer_pins_everything_lambdas_runtime_provides() -> None:
    # Lambda's Python runtime has its own boto3 set on the path after the layer; the local run has
    # none, which is faithful only while the layer pins each of them (its copy is then the one used).
    pinned = {
        re.split(r"[=<>~ ]", line, maxsplit=1)[0].lower()
        for line in REQUIREMENTS.read_text().splitlines()
        if line and not line.startswith((" ", "#"))
    }
    assert sorted(set(RUNTIME_PROVIDED) - pinned) == []


def test_package_is_built_for_the_hosts_architecture() -> None:
    assert host_platform() in PLATFORMS.values()


def test_function_config_takes_the_templates_memory_and_timeout() -> None:
    template = load_template()
    api = function_config(template, "ApiFunction", {"BUCKET_NAME": "b"})
    worker = function_config(template, "CopyWorkerFunction", {})
    assert (api.memory_mb, api.timeout_seconds, api.handler) == (512, 29.0, "app.lambda_handler")
    assert (worker.memory_mb, worker.timeout_seconds) == (1024, 900.0)
    assert worker.cpus == 1024 / MB_PER_VCPU
    assert api.environment == {"BUCKET_NAME": "b"}


def test_lambda_environment_reserved_variables_win_over_the_functions() -> None:
    config = FunctionConfig(
        name="kie2s3-api",
        handler="app.lambda_handler",
        memory_mb=512,
        timeout_seconds=29,
        environment={"AWS_LAMBDA_FUNCTION_NAME": "spoofed", "_HANDLER": "evil.h", "BUCKET_NAME": "b"},
    )
    package = Package(code=Path("/pkg/code"), layer=Path("/pkg/layer"))
    environ = lambda_environment(config, package, "127.0.0.1:9001")
    assert environ["AWS_LAMBDA_FUNCTION_NAME"] == "kie2s3-api"
    assert environ["_HANDLER"] == "app.lambda_handler"
    assert environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert environ["LAMBDA_TASK_ROOT"] == "/pkg/code"
    assert environ["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:9001"
    assert environ["BUCKET_NAME"] == "b"
