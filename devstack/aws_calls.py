"""The AWS requests each function of the template makes, recorded for the IAM check (devstack/iam.py).

With KIE2S3_AWS_CALLS naming a directory, every process that imports the runtime stand-in
(devstack.lambda_runtime: the test session, a worker, the local stack's functions) records into
`<directory>/<pid>.jsonl`, through botocore's own events on every client built afterwards (the hook
`make bench`'s round-trip recorder uses, devstack.roundtrips): for each request the function
whose invocation made it, the operation, and what the IAM check needs of its parameters (bucket and
key, table and index, queue, secret, bus, tags, the KMS key of an SSE-KMS object). A request is the
function's when its invocation's thread made it, or a thread that invocation started (the copy's
part uploads); requests of the tests themselves, of the operator's tools and of moto's set-up
belong to no invocation and are not recorded. What Lambda does with the function's role (receive
and delete a queue's messages, read a stream, write logs and traces) is recorded by the stand-in's
pollers and `invoke` as the function's, origin "lambda".

Each line is one JSON document: a "stack" (what `provision` created: parameters, physical ids), a
"config" (the function environment invocations ran with) or a distinct "call". Lines are appended
after each invocation, so a worker killed mid-copy keeps what it recorded before.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, Final

ENV_VARIABLE: Final = "KIE2S3_AWS_CALLS"
_THREAD_ATTRIBUTE: Final = "_kie2s3_function"
# The parameters of a request that name what IAM authorises it against (and how).
_RESOURCE_PARAMETERS: Final = (
    "Bucket",
    "Key",
    "VersionId",
    "TableName",
    "IndexName",
    "QueueUrl",
    "SecretId",
    "StreamArn",
    "ServerSideEncryption",
    "SSEKMSKeyId",
    "BypassGovernanceRetention",
)


def _acting() -> tuple[str, str] | None:
    """(function, origin) of the invocation this thread serves, if any."""
    found: tuple[str, str] | None = getattr(threading.current_thread(), _THREAD_ATTRIBUTE, None)
    return found


def _summary(service: str, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """What of a request's parameters the IAM check reads."""
    summary: dict[str, Any] = {k: params[k] for k in _RESOURCE_PARAMETERS if params.get(k) not in (None, "")}
    if params.get("Tagging"):
        summary["Tagging"] = True
    if service == "dynamodb" and operation == "TransactWriteItems":
        summary["Items"] = sorted(
            {
                (kind, str(item[kind].get("TableName")))
                for item in params.get("TransactItems", [])
                for kind in item
            }
        )
    if service == "dynamodb" and operation.startswith("Batch"):
        summary["Tables"] = sorted(params.get("RequestItems") or {})
    if service == "events" and operation == "PutEvents":
        summary["Buses"] = sorted(
            {str(e.get("EventBusName") or "default") for e in params.get("Entries", [])}
        )
    return summary


class CallRecorder:
    """Records the distinct AWS requests of this process's functions into one JSONL file."""

    def __init__(self, path: Path, environ: Mapping[str, str] | None = None) -> None:
        self.path = path
        self._environ = os.environ if environ is None else environ
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._pending: list[str] = []
        self._installed = False
        self._context_key = f"kie2s3_call_{id(self)}"  # a request's parameters, until its answer

    # -- what is recorded

    def _line(self, document: dict[str, Any]) -> str:
        return json.dumps(document, sort_keys=True, default=str)

    def _add(self, document: dict[str, Any]) -> None:
        line = self._line(document)
        with self._lock:
            if line not in self._seen:
                self._seen.add(line)
                self._pending.append(line)

    def _config(self) -> str:
        """The id of the function environment in force (recorded once)."""
        names = {*_global_variables(), "AWS_ENDPOINT_URL"}
        env = {name: self._environ[name] for name in sorted(names) if name in self._environ}
        config = hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()[:16]
        self._add({"kind": "config", "id": config, "env": env})
        return config

    def note(self, service: str, operation: str, params: Mapping[str, Any]) -> None:
        """Record a request of the function this thread acts for (nothing when it acts for none)."""
        acting = _acting()
        if acting is None:
            return
        function, origin = acting
        self._add(
            {
                "kind": "call",
                "config": self._config(),
                "function": function,
                "origin": origin,
                "service": service,
                "operation": operation,
                "params": dict(params),
            }
        )

    def note_stack(
        self, endpoint_url: str, parameters: Mapping[str, str], physical_ids: Mapping[str, str]
    ) -> None:
        """Record what `provision` created, so that the check resolves the roles of that stack."""
        self._add(
            {
                "kind": "stack",
                "endpoint": endpoint_url,
                "parameters": dict(parameters),
                "physical_ids": dict(physical_ids),
            }
        )
        self.flush()

    def flush(self) -> None:
        """Append what was recorded since the last flush."""
        with self._lock:
            pending, self._pending = self._pending, []
        if pending:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write("".join(f"{line}\n" for line in pending))

    # -- hooks

    def install(self) -> None:
        """Hook boto3 clients built from now on, and threads started by an invocation (once per process)."""
        if self._installed:
            return
        self._installed = True
        from devstack.roundtrips import on_new_clients

        on_new_clients(self.attach)
        start = threading.Thread.start

        def started_by_invocation(thread: threading.Thread) -> None:
            setattr(thread, _THREAD_ATTRIBUTE, _acting())
            start(thread)

        threading.Thread.start = started_by_invocation  # type: ignore[method-assign,assignment]
        self._hook_parameters()

    def _hook_parameters(self) -> None:
        """Powertools Parameters keeps a secret per process, and the tests run every function in one:
        a read its cache answers is recorded as the GetSecretValue the function's own container makes."""
        from aws_lambda_powertools.utilities.parameters.base import BaseProvider

        get = BaseProvider.get
        recorder = self

        def recorded_get(provider: BaseProvider, name: str, *args: Any, **kwargs: Any) -> Any:
            client = getattr(provider, "client", None) or getattr(provider, "_client", None)
            service = getattr(
                getattr(getattr(client, "meta", None), "service_model", None), "signing_name", ""
            )
            if service == "secretsmanager":
                recorder.note(service, "GetSecretValue", {"SecretId": name})
            return get(provider, name, *args, **kwargs)

        BaseProvider.get = recorded_get  # type: ignore[method-assign,assignment]

    def attach(self, client: Any) -> None:
        """Record the requests of one client."""
        client.meta.events.register("before-parameter-build", self._before_parameter_build)
        client.meta.events.register("after-call", self._after_call)

    def _before_parameter_build(self, params: Mapping[str, Any], model: Any, context: Any, **_: Any) -> None:
        if _acting() is None:
            return  # a request of the tests' own, or of an operator's tool
        service = model.service_model.signing_name
        summary = _summary(service, model.name, params)
        if context.get("is_presign_request"):
            self.note(service, model.name, {**summary, "Presigned": True})
        else:
            context[self._context_key] = summary

    def _after_call(self, parsed: Mapping[str, Any], model: Any, context: Any, **_: Any) -> None:
        summary = context.pop(self._context_key, None)
        if summary is None:
            return
        if parsed.get("ServerSideEncryption") == "aws:kms" and parsed.get("SSEKMSKeyId"):
            summary = {**summary, "StoredWithKmsKey": parsed["SSEKMSKeyId"]}
        if str(parsed.get("Error", {}).get("Code")) in ("404", "NoSuchKey"):
            summary = {**summary, "Missing": True}  # S3 answers 404 only to who may list the bucket
        self.note(model.service_model.signing_name, model.name, summary)


@cache
def _template() -> dict[str, Any]:
    """template.yaml, read once per process."""
    from devstack.template import load_template

    return load_template()


def _global_variables() -> frozenset[str]:
    variables = (
        (_template().get("Globals") or {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    )
    return frozenset(variables)


_RECORDER: list[CallRecorder] = []


def recorder() -> CallRecorder | None:
    """This process's recorder: installed at the first call when KIE2S3_AWS_CALLS is set, else None."""
    if not _RECORDER:
        directory = os.environ.get(ENV_VARIABLE)
        if not directory:
            return None
        import atexit

        found = CallRecorder(Path(directory) / f"{os.getpid()}.jsonl")
        found.install()
        atexit.register(found.flush)
        _RECORDER.append(found)
    return _RECORDER[0]


@contextmanager
def acting_as(function: str | None, origin: str = "code") -> Iterator[None]:
    """Within the block, this thread's requests (and those of threads it starts) are `function`'s."""
    found = recorder()
    if found is None or function is None:
        yield
        return
    thread = threading.current_thread()
    previous = getattr(thread, _THREAD_ATTRIBUTE, None)
    setattr(thread, _THREAD_ATTRIBUTE, (function, origin))
    try:
        yield
    finally:
        setattr(thread, _THREAD_ATTRIBUTE, previous)
        found.flush()


def note_lambda(function: str | None, service: str, operation: str, params: Mapping[str, Any]) -> None:
    """Record a request Lambda makes with the function's role that the stand-in does not make itself."""
    found = recorder()
    if found is not None and function is not None:
        with acting_as(function, "lambda"):
            found.note(service, operation, params)


# ---------------------------------------------------------------------------------------------- routing


def deployed_function(event: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> str:
    """The template's function an event reaches when deployed: the HTTP API's routes, the queue its
    records come from, the ledger's stream, the schedule."""
    from kie2s3.events import event_kind

    template = _template()
    environ = os.environ if environ is None else environ
    match event_kind(dict(event)):
        case "sqs":
            arns = {str(r.get("eventSourceARN", "")) for r in event.get("Records") or []}
            return _queue_function(template, environ, arns)
        case "dynamodb":
            from devstack.template import stream_mappings

            return stream_mappings(template)[0].function
        case "schedule":
            return _event_function(template, lambda e: e.get("Type") in ("Schedule", "ScheduleV2"))
        case _:
            return _event_function(template, lambda e: e.get("Type") == "HttpApi")


def _event_function(template: Mapping[str, Any], wanted: Callable[[Mapping[str, Any]], bool]) -> str:
    for logical_id, resource in (template.get("Resources") or {}).items():
        if any(wanted(e) for e in ((resource.get("Properties") or {}).get("Events") or {}).values()):
            return str(logical_id)
    raise ValueError("no function of the template takes this event")


def _queue_function(template: Mapping[str, Any], environ: Mapping[str, str], arns: set[str]) -> str:
    """The SQS-triggered function whose queue (named by the environment's queue URL) sent the records."""
    names = {arn.rsplit(":", 1)[-1] for arn in arns}
    variables = (
        (template.get("Globals") or {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    )
    queue_urls = {
        value["Ref"]: environ.get(name, "")
        for name, value in variables.items()
        if isinstance(value, dict) and isinstance(value.get("Ref"), str)
    }
    first = None
    for logical_id, resource in (template.get("Resources") or {}).items():
        for event in ((resource.get("Properties") or {}).get("Events") or {}).values():
            if event.get("Type") != "SQS":
                continue
            first = first or str(logical_id)
            queue = event["Properties"]["Queue"].get("Fn::GetAtt", [""])[0]
            if queue_urls.get(queue, "").rstrip("/").rsplit("/", 1)[-1] in names:
                return str(logical_id)
    if first is None:
        raise ValueError("the template has no SQS-triggered function")
    return (
        first  # a hand-made event whose queue is none of the stack's: the copy worker's, as context_for says
    )
