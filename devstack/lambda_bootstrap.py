"""The runtime inside a local function process: what Lambda's Python 3.13 runtime does, standard library only.

`devstack.sandbox` runs it as `python3.13 -I -S -u lambda_bootstrap.py --layer DIR` with the
function's environment, in LAMBDA_TASK_ROOT. It puts only the package (LAMBDA_TASK_ROOT) and the
layer (DIR: Lambda's /opt) before the standard library on the path, imports the handler `_HANDLER`
names, then serves invocations through the Runtime API at AWS_LAMBDA_RUNTIME_API as Lambda's
runtime interface client does: GET the next event, call the handler, POST its result or its error.
A handler module that cannot be imported is reported as Lambda reports it (`Runtime.ImportModuleError`,
"Unable to import module 'app': No module named '…'") and the process exits.

It imports nothing but the standard library: the package must bring everything the handler needs.
"""

import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.request
from typing import Any

API_VERSION = "2018-06-01"


class Context:
    """Lambda's context object for one invocation."""

    def __init__(self, request_id: str, deadline_ms: int, arn: str) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = arn
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before Lambda stops the invocation."""
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _post(path: str, document: Any) -> None:
    url = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/{API_VERSION}/runtime/{path}"
    body = json.dumps(document).encode()
    request = urllib.request.Request(url, data=body, method="POST")
    with urllib.request.urlopen(request) as answer:  # the local Runtime API, on loopback
        answer.read()


def _error(exc: BaseException, error_type: str | None = None, message: str | None = None) -> dict[str, Any]:
    return {
        "errorMessage": message if message is not None else str(exc),
        "errorType": error_type or type(exc).__name__,
        "requestId": "",
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def _log_error(document: dict[str, Any]) -> None:
    """The runtime's log line of a failed init or invocation (as Lambda writes it to the function's log)."""
    print(f"[ERROR] {document['errorType']}: {document['errorMessage']}", file=sys.stderr, flush=True)
    for frame in document["stackTrace"]:
        print(frame.rstrip(), file=sys.stderr, flush=True)


def set_path(task_root: str, layer: str) -> None:
    """The package, then the layer (as /opt: python/lib/python3.13/site-packages and python/), then the
    standard library; nothing else (no site-packages, no current directory)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    stdlib = [p for p in sys.path if p and "site-packages" not in p and "dist-packages" not in p]
    layer_paths = [
        os.path.join(layer, "python", "lib", version, "site-packages"),
        os.path.join(layer, "python"),
    ]
    sys.path[:] = [task_root, *layer_paths, *stdlib]


def load_handler() -> Any:
    """The function `_HANDLER` names (module.function), imported from the package or the layer."""
    module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
    try:
        module = __import__(module_name)
    except ImportError as exc:
        raise _InitError(
            exc, "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from exc
    except SyntaxError as exc:
        raise _InitError(
            exc, "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}"
        ) from exc
    except Exception as exc:  # the module raised at import: the init fails with its error
        raise _InitError(exc, type(exc).__name__, str(exc)) from exc
    try:
        return getattr(module, function_name)
    except AttributeError as exc:
        message = f"Handler '{function_name}' missing on module '{module_name}'"
        raise _InitError(exc, "Runtime.HandlerNotFound", message) from exc


class _InitError(Exception):
    def __init__(self, cause: BaseException, error_type: str, message: str) -> None:
        super().__init__(message)
        self.document = _error(cause, error_type, message)


def _next() -> tuple[str, Any, Context]:
    url = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/{API_VERSION}/runtime/invocation/next"
    with urllib.request.urlopen(url) as answer:  # blocks until the next event
        headers = answer.headers
        event = json.loads(answer.read())
    request_id = headers["Lambda-Runtime-Aws-Request-Id"]
    if trace := headers.get("Lambda-Runtime-Trace-Id"):
        os.environ["_X_AMZN_TRACE_ID"] = trace
    context = Context(
        request_id, int(headers["Lambda-Runtime-Deadline-Ms"]), headers["Lambda-Runtime-Invoked-Function-Arn"]
    )
    return request_id, event, context


def serve(handler: Any) -> None:
    """Invocations, one at a time, until the process is stopped."""
    while True:
        request_id, event, context = _next()
        try:
            result = handler(event, context)
        except Exception as exc:
            document = _error(exc)
            _log_error(document)
            _post(f"invocation/{request_id}/error", document)
            continue
        try:
            json.dumps(result)
        except (TypeError, ValueError) as exc:
            document = _error(exc, "Runtime.MarshalError", f"Unable to marshal response: {exc}")
            _post(f"invocation/{request_id}/error", document)
            continue
        try:
            _post(f"invocation/{request_id}/response", result)
        except urllib.error.HTTPError as exc:  # 413: larger than Lambda carries; the invocation failed
            document = _error(exc, "Function.ResponseSizeTooLarge", exc.read().decode(errors="replace"))
            _log_error(document)


def main() -> int:
    """Init (the path, the handler's import), then serve."""
    layer = sys.argv[sys.argv.index("--layer") + 1]
    set_path(os.environ["LAMBDA_TASK_ROOT"], layer)
    try:
        handler = load_handler()
    except _InitError as exc:
        _log_error(exc.document)
        _post("init/error", exc.document)
        return 1
    serve(handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
