"""End-to-end tests: they speak to kie2s3 only over HTTP (its API URL) and S3 (its bucket).

By default they run against a local stack of their own, started with `make up`'s Python entry point
in a temporary state directory on free ports (never a developer's running stack), and stopped at
the end of the session, when no process of it may be left and every port it used must be free.

Against a deployed stack (`make e2e STACK_NAME=… KIE_TASK_ID=…`): KIE2S3_E2E_STACK_NAME names it,
KIE2S3_E2E_TASK_ID a finished kie.ai task of yours (KIE2S3_E2E_FAMILY its family, default market),
and the default AWS credential chain signs `/copies` and `/tasks` with SigV4. The signed-callback
test also needs KIE_WEBHOOK_HMAC_KEY (skipped without it). Tasks the tests create are named
`e2e…` and stay in the archive.
"""

import base64
import contextlib
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from devstack.callbacks import RemoteEmulator

ROOT = Path(__file__).resolve().parents[2]
FINAL = ("copied", "failed", "ignored")
COPY_TIMEOUT_SECONDS = 60.0


def stack_name() -> str:
    """The deployed stack under test; empty: a local stack of the session's own."""
    return os.environ.get("KIE2S3_E2E_STACK_NAME", "")


@dataclass
class Answer:
    """An HTTP answer: status, headers (lower-case names) and the body (JSON decoded when it is JSON)."""

    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.raw)


@dataclass
class Target:
    """What the tests talk to: the API (over HTTP) and the bucket (over S3)."""

    api_url: str
    bucket: str
    s3: Any
    hmac_key: str | None
    session: Any = None  # a boto3 session: requests to /copies and /tasks are SigV4-signed
    local: dict[str, Any] = field(default_factory=dict)  # the local stack's state (local runs only)

    def request(
        self, method: str, path: str, *, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Answer:
        """One HTTP request to the API; SigV4-signed on a deployed stack's IAM routes."""
        url = f"{self.api_url}{path}"
        sent = (
            {"content-type": "application/json", **(headers or {})}
            if body is not None
            else dict(headers or {})
        )
        if self.session is not None and not path.startswith("/callbacks/"):
            sent = _sigv4(self.session, method, url, body, sent)
        request = urllib.request.Request(url, data=body, headers=sent, method=method)
        try:
            with urllib.request.urlopen(request, timeout=35) as answer:
                return Answer(answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read())
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())

    def post_json(self, path: str, payload: Any, headers: Mapping[str, str] | None = None) -> Answer:
        """POST a JSON body."""
        return self.request("POST", path, body=json.dumps(payload).encode(), headers=headers)

    def task(self, task_id: str) -> Answer:
        """GET /tasks/{taskId}."""
        return self.request("GET", f"/tasks/{urllib.parse.quote(task_id)}")

    def until_done(self, task_id: str, timeout: float = COPY_TIMEOUT_SECONDS) -> dict[str, Any]:
        """The task's status document once it is final (copied, failed or ignored)."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.task(task_id)
            assert answer.status == 200, answer.raw
            document: dict[str, Any] = answer.json
            if document["state"] in FINAL or time.monotonic() > deadline:
                return document
            time.sleep(0.2)

    def stored(self, key: str) -> bytes:
        """An object of the bucket."""
        body: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body


def _sigv4(
    session: Any, method: str, url: str, body: bytes | None, headers: dict[str, str]
) -> dict[str, str]:
    from devstack.sigv4 import api_region, sign

    region = api_region(url, session.region_name)
    return sign(session.get_credentials(), region, method, url, body or b"", headers)


def kie_signature(key: str, task_id: str, timestamp: int) -> dict[str, str]:
    """kie.ai's webhook headers: base64(HMAC-SHA256(key, "<taskId>.<timestamp>"))."""
    mac = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return {"X-Webhook-Timestamp": str(timestamp), "X-Webhook-Signature": base64.b64encode(mac).decode()}


def market_callback(task_id: str, urls: list[str]) -> dict[str, Any]:
    """A Market success callback body, as kie.ai sends it."""
    return {
        "code": 200,
        "msg": "Playground task completed successfully.",
        "data": {
            "taskId": task_id,
            "model": "nano-banana-pro",
            "state": "success",
            "param": json.dumps({"model": "nano-banana-pro", "input": {"prompt": "e2e"}}),
            "resultJson": json.dumps({"resultUrls": urls}),
            "failCode": None,
            "failMsg": None,
        },
    }


@dataclass(frozen=True)
class ResultFile:
    """A file kie.ai holds for a task: its result URL, and its SHA-256 when the test knows it."""

    url: str
    sha256: str | None


class Origin:
    """kie.ai's side: result files to copy and a task whose record-info lists them."""

    def files(self, count: int) -> list[ResultFile]:
        """Result files nobody has archived under a new task id yet."""
        raise NotImplementedError

    def task(self) -> tuple[str, str]:
        """(task id, family) of a finished task that record-info knows."""
        raise NotImplementedError


class LocalOrigin(Origin):
    """The local stack's kie.ai emulator, driven through its admin API (HTTP, loopback only)."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.emulator = RemoteEmulator(base_url, api_key)

    def files(self, count: int) -> list[ResultFile]:
        prefix = uuid.uuid4().hex
        found = []
        for n in range(count):
            url = f"https://tempfile.aiquickdraw.com/p/{prefix}_{n}.png"
            served = self.emulator.serve([url], size=96 * 1024 + n)
            found.append(ResultFile(url, served[url]["sha256"]))
        return found

    def task(self) -> tuple[str, str]:
        task_id = uuid.uuid4().hex
        urls = [f.url for f in self.files(2)]
        data = {"taskId": task_id, "state": "success", "resultJson": json.dumps({"resultUrls": urls})}
        self.emulator.add_task("market", task_id, data)
        return task_id, "market"


class DeployedOrigin(Origin):
    """Real kie.ai: the given task, and its result files (found through POST /copies by task id)."""

    def __init__(self, target: Target, task_id: str, family: str) -> None:
        self.target = target
        self.task_id = task_id
        self.family = family
        self._sources: list[str] = []

    def task(self) -> tuple[str, str]:
        return self.task_id, self.family

    def files(self, count: int) -> list[ResultFile]:
        if not self._sources:
            answer = self.target.post_json("/copies", {"taskId": self.task_id, "family": self.family})
            assert answer.status in (200, 202), answer.raw
            self._sources = [f["source"] for f in self.target.until_done(self.task_id)["files"]]
        if len(self._sources) < count:
            pytest.skip(f"task {self.task_id} has {len(self._sources)} file(s); this test needs {count}")
        return [ResultFile(url, None) for url in self._sources[:count]]


def _run(*args: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src/handler'}:{ROOT}", "KIE2S3_STATE_DIR": str(state_dir)}
    return subprocess.run(
        [sys.executable, "-m", "devstack.up", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def stack_processes(state: Mapping[str, Any]) -> list[int]:
    """Every live process carrying the stack's id."""
    from devstack.running import processes_of

    return processes_of(str(state["stackId"]), {k: int(v) for k, v in state["pids"].items()})


def stack_ports(state: Mapping[str, Any]) -> list[int]:
    """The ports the stack listens on: the API, the kie.ai emulator, moto."""
    return [urllib.parse.urlsplit(state[name]).port or 0 for name in ("apiUrl", "kieUrl", "awsUrl")]


@pytest.fixture(scope="session")
def local_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A local stack of the session's own (`make up`'s entry point)."""
    with own_local_stack(tmp_path_factory.mktemp("stack") / "state") as state:
        yield state


@contextlib.contextmanager
def own_local_stack(state_dir: Path, *options: str) -> Iterator[dict[str, Any]]:
    """A local stack in `state_dir` on free ports (`make up`'s entry point, with `options` such as
    `--auth iam`); stopped at the end, and then no process of it may be left and every port it used
    must be free."""
    from devstack.running import port_is_free

    started = _run("up", "--port", "0", *options, state_dir=state_dir)
    assert started.returncode == 0, started.stdout + started.stderr
    state = json.loads((state_dir / "state.json").read_text())
    state["stateDir"] = str(state_dir)
    try:
        yield state
    finally:
        stopped = _run("down", state_dir=state_dir)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert stack_processes(state) == []
        assert [port for port in stack_ports(state) if not port_is_free(port)] == []
        assert not state_dir.exists()


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    """The stack under test: a deployed one (KIE2S3_E2E_STACK_NAME), else the session's local stack."""
    name = stack_name()
    if not name:
        state = request.getfixturevalue("local_state")
        s3 = boto3.client(
            "s3",
            endpoint_url=state["awsUrl"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        return Target(state["apiUrl"], state["bucket"], s3, state["hmacKey"], local=state)
    from devstack.cli import UserError, aws_session

    try:
        session = aws_session(f"the e2e tests against stack {name}")
    except UserError as exc:
        pytest.exit(f"error: {exc}", returncode=2)
    stack = session.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    hmac_key = os.environ.get("KIE_WEBHOOK_HMAC_KEY") or None
    return Target(
        outputs["ApiUrl"].rstrip("/"), outputs["BucketName"], session.client("s3"), hmac_key, session
    )


@pytest.fixture(scope="session")
def origin(target: Target) -> Origin:
    """kie.ai's side of the stack under test."""
    if target.session is None:
        return LocalOrigin(target.local["kieUrl"], target.local["kieApiKey"])
    task_id = os.environ.get("KIE2S3_E2E_TASK_ID", "")
    if not task_id:
        pytest.exit("error: KIE2S3_E2E_TASK_ID (make e2e ... KIE_TASK_ID=<task>) names no task", returncode=2)
    return DeployedOrigin(target, task_id, os.environ.get("KIE2S3_E2E_FAMILY") or "market")


@pytest.fixture
def local_target(target: Target) -> Target:
    """The session's local stack (tests of `make up` itself skip on a deployed stack)."""
    if target.session is not None:
        pytest.skip("a test of the local stack")
    return target


@pytest.fixture
def new_task() -> str:
    """A task id nobody has used yet."""
    return f"e2e{uuid.uuid4().hex}"
