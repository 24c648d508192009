"""`make soak [SEED=n] [TASKS=n] [MINUTES=n]`: a seeded workload under faults, a drain, then the checker.

The local stack in queue mode (moto + the kie.ai emulator), copy workers in processes of their own
(devstack.worker: AWS faults and kills from botocore's transport hooks, per process, from the seed),
the events function over the ledger's stream, the callback and `POST /copies` routes in this
process (their AWS faults scoped to their invocations). The workload (random.Random(seed)):
Market tasks of 1-4 files and tasks of every family from events/ (devstack.soak.workload), sizes
from empty to multipart, failures, callbacks sent more than once, out of order, raced by
`POST /copies` and sent again by kie.ai when it saw them fail, kie.ai download-url and
record-info codes, source faults (stalls, resets, truncation, 5xx, bytes changing between
requests, 404 as the one permanent fault), outages kie.ai gives up in, a few takedowns
mid-flight. Then faults stop and the stack drains as an operator would (the lost tasks
backfilled, the reconciler on a clock past its staleness, the DLQ redriven), and
devstack.soak.checker verifies S3, the ledger, the queues, the delivered events and kie.ai's
answers. Exit 1 on any violation. docs/architecture.md (The soak) says it all in prose.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol, cast

from devstack.aws import MotoServer
from devstack.callbacks import callback_event, market_body, serve_result_files
from devstack.expected_files import EXPECTED
from devstack.kie_faults import FileFault
from devstack.lambda_runtime import function_environment, http_event, invoke
from devstack.moto_server import ACCESS_LOG_ENV as MOTO_ACCESS_LOG_ENV
from devstack.soak import checker
from devstack.soak.aws_faults import ENV as AWS_FAULTS_ENV
from devstack.soak.aws_faults import KILL_ENV, AwsFaults, install
from devstack.soak.workload import Delivery, sample_task
from devstack.stack import WEBHOOK_HMAC_KEY, Stack, local_stack

ROOT = Path(__file__).resolve().parents[2]
KIB, MIB = 1024, 1024**2
# File sizes drawn from: empty, small, one part, just over a part (8 MiB: DEFAULT_SHAPE), multipart
# (a few, up to some tens of MiB): most are small, so that a long soak's bytes stay within what moto
# and 2 cores move.
SIZES = [0, 1, 700, 64 * KIB, 300 * KIB, 1 * MIB, 8 * MIB + 1, 11 * MIB, 24 * MIB]
SIZE_WEIGHTS = [2, 3, 3, 10, 8, 2, 0.6, 0.25, 0.08]
# moto keeps an object's bytes in memory up to this size, the rest in temporary files: a long
# soak stores GiBs (devstack.aws.MOTO_ENVIRONMENT keeps them all in memory, for the benchmarks).
MOTO_BUFFER_BYTES = 1 * MIB
SUFFIXES = [".png", ".jpg", ".mp4", ".mp3", ".webp"]
# kie.ai's envelope codes on download-url: 429/455/500 are passing (kie-api.md: back off), 501
# ("generation failed") is permanent: a file whose link answered it may end failed.
DOWNLOAD_URL_CODES = [429, 455, 500, 501]
PERMANENT_CODES = frozenset({501})
COPY_WORKER_MEMORY_MIB = 1024  # template.yaml: the copy worker's MemorySize
# kie.ai delivers a callback again after one it saw fail (anything but a timely 200): three times,
# 1, 5 and 15 minutes later (kie-api.md, Callbacks). The soak's minute is a second.
RETRY_MINUTES = (1, 5, 15)
SOAK_MINUTE_SECONDS = 1.0
# record-info's passing envelope codes (kie-api.md: back off), drawn for `POST /copies` by task id.
RECORD_INFO_CODES = [429, 455, 500]
# The ledger (DynamoDB) and the archive (S3): a callback may answer 5xx only while one of them fails.
STORES = frozenset({"dynamodb", "s3"})
# SIGKILLs (devstack.soak.aws_faults.Kill): every copy worker's run, at one of these points, the
# nth time it reaches it (a run lasts until the queue is empty, which a workload sending as fast as
# the stack takes never lets happen: a run handles hundreds of messages); a share of the events
# function's batches, mid-batch.
WORKER_KILL_NTH_MAX = 60
# The copy workers' Lambda timeout in the soak, and their messages' visibility (no shorter, as SQS
# requires of a function's queue): a killed worker's copy lock (Powertools' in-progress record,
# as long as the invocation's time left) has expired when its message comes back.
WORKER_TIMEOUT_SECONDS = 20
WORKER_KILL_POINTS = ["mid-part", "after-upload", "before-delete"]
# The events container is killed after its nth PutEvents, n drawn up to this.
EVENTS_KILL_EVERY = 150
# The callbacks and POST /copies run in up to this many containers of the API function at once, as
# Lambda runs concurrent requests in containers of their own (each a process: about 100 MiB).
API_CONCURRENCY = 4
EVENTS_READ_SECONDS = 5.0


@dataclass
class Figures:
    tasks: int = 0
    sent: int = 0  # tasks whose callbacks went out before the workload's time was up
    files: int = 0
    bytes: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    families: Counter[str] = field(default_factory=Counter)
    callbacks: int = 0
    callback_answers: Counter[int] = field(default_factory=Counter)
    kie_retries: int = 0  # callbacks kie.ai sent again after one it saw fail
    lost: int = 0  # tasks none of whose final callback's deliveries was acknowledged
    backfilled: int = 0  # of those, recorded again by the drain's backfill
    containers: int = 0  # containers started (the API's, the events function's, one per outage callback)
    api_concurrency: int = 0  # the most API containers in invocations at once
    kills: Counter[str] = field(default_factory=Counter)  # process -> SIGKILLs, by point
    copies_requests: int = 0
    takedowns: int = 0
    worker_runs: int = 0
    worker_peak_rss_mib: float = 0.0
    total_peak_rss_mib: float = (
        0.0  # the soak, moto, the copy workers and the events container at once, each second
    )
    aws_requests: int = 0
    drain_rounds: int = 0
    redriven: int = 0
    workload_seconds: float = 0.0
    sending_seconds: float = 0.0  # until every task's callbacks (not kie.ai's retries) were answered
    drain_seconds: float = 0.0


@dataclass
class Planned:
    task_id: str
    family: str
    deliveries: list[Delivery]  # sent in this order (Suno's stages); each of a single one `duplicates` times
    urls: list[str]  # the result URLs the task must yield, in order
    success: bool
    duplicates: int
    race_copies: bool
    takedown: bool
    race_by: str = "urls"  # `POST /copies` by "urls", by "task" id, or by task id in "bulk" form
    # Every delivery of its callbacks falls in an outage (kie.ai gives up; the drain backfills it):
    # "gateway", the function throttled (API Gateway answers 503, the function never runs), or
    # "ledger", DynamoDB failing throughout the invocation (a container of its own: botocore's
    # backoff holds it for seconds).
    outage: str | None = None
    permanent: set[str] = field(default_factory=set)
    faults: Counter[str] = field(default_factory=Counter)  # kie.ai's and the sources', as planned
    bytes: int = 0


class ContainerDied(RuntimeError):
    """The container's process ended in an invocation (killed, or it crashed)."""


@dataclass
class ContainerSummary:
    injected: dict[str, int]
    killed: str | None


class ServedContainer:
    """The function in a process of its own (devstack.soak.container --serve), one Lambda container:
    one invocation at a time, the event and its answer one line each over its stdin and stdout."""

    def __init__(self, env: dict[str, str], kill: str, log: Path) -> None:
        if kill:
            env = {**env, KILL_ENV: kill}
        with log.open("w") as logs:  # the function's logs
            self._process = subprocess.Popen(
                [sys.executable, "-m", "devstack.soak.container", "--serve"],
                env=env,
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=logs,
                text=True,
            )
        self._stdin, self._stdout = (
            cast("IO[str]", self._process.stdin),
            cast("IO[str]", self._process.stdout),
        )
        self._lines: list[str] = []

    def invoke(self, event: dict[str, Any]) -> Any:
        return self.invoke_with_faults(event)[0]

    def invoke_with_faults(self, event: dict[str, Any]) -> tuple[Any, set[str]]:
        """The answer, and the AWS services that answered the invocation with a fault."""
        try:
            self._stdin.write(json.dumps(event) + "\n")
            self._stdin.flush()
        except BrokenPipeError as exc:
            raise ContainerDied("the container has gone") from exc
        failed: set[str] = set()
        for line in self._stdout:
            if line.startswith("SOAK-FAILED "):
                failed = set(json.loads(line.removeprefix("SOAK-FAILED ")))
            elif line.startswith("SOAK-ANSWER "):
                return json.loads(line.removeprefix("SOAK-ANSWER ")), failed
            elif line.startswith("SOAK-ERROR "):
                raise RuntimeError(f"the function raised {line.removeprefix('SOAK-ERROR ').strip()}")
            else:
                self._lines.append(line)
        raise ContainerDied("the container died mid-invocation")

    @property
    def pid(self) -> int:
        return self._process.pid

    def stop(self) -> ContainerSummary:
        """End the process (stdin closed: it exits); what it injected, and where it was killed."""
        with contextlib.suppress(BrokenPipeError):
            self._stdin.close()
        self._lines += self._stdout.readlines()
        self._process.wait(timeout=60)
        injected: dict[str, int] = {}
        killed = None
        for line in self._lines:
            if line.startswith("SOAK-FAULTS "):
                injected = json.loads(line.removeprefix("SOAK-FAULTS "))["injected"]
            elif line.startswith("SOAK-KILL "):
                killed = line.removeprefix("SOAK-KILL ").strip()
        return ContainerSummary(injected, killed)


class Container(Protocol):
    """A function's container as ApiFunction runs it (a ServedContainer)."""

    @property
    def pid(self) -> int: ...

    def invoke_with_faults(self, event: dict[str, Any]) -> tuple[Any, set[str]]: ...

    def stop(self) -> ContainerSummary: ...


class ApiFunction:
    """The API function's containers, as Lambda scales a function: an idle container takes the next
    request, else a new one starts, up to `concurrency` at once (beyond, a request waits for one);
    a container that died is dropped."""

    def __init__(self, start: Callable[[int], Container], concurrency: int) -> None:
        self._start = start
        self._concurrency = concurrency
        self._idle: list[Container] = []
        self._all: list[Container] = []
        self._dead: list[Container] = []  # died in an invocation: stopped with the others
        self._started = 0
        self._free = threading.Condition()
        self.peak = 0  # the most containers running invocations at once

    def invoke(self, event: dict[str, Any]) -> tuple[Any, set[str]]:
        """The answer (None if the container died in the invocation), and the AWS services that
        answered the invocation with a fault."""
        container = self._take()
        try:
            answer = container.invoke_with_faults(event)
        except ContainerDied:
            self._give(container, alive=False)
            return None, set()
        except BaseException:
            self._give(container)
            raise
        self._give(container)
        return answer

    def _take(self) -> Container:
        with self._free:
            self._free.wait_for(lambda: self._idle or len(self._all) < self._concurrency)
            if self._idle:
                container = self._idle.pop()
            else:
                container = self._start(self._started)
                self._started += 1
                self._all.append(container)
            self.peak = max(self.peak, len(self._all) - len(self._idle))
            return container

    def _give(self, container: Container, *, alive: bool = True) -> None:
        with self._free:
            if alive:
                self._idle.append(container)
            else:
                self._all.remove(container)
                self._dead.append(container)
            self._free.notify()

    @property
    def pids(self) -> list[int]:
        with self._free:
            return [c.pid for c in self._all]

    def stop(self) -> list[ContainerSummary]:
        """Stop every container (none may be in an invocation); what each injected."""
        with self._free:
            containers = self._all + self._dead
            self._all, self._idle, self._dead = [], [], []
        return [c.stop() for c in containers]


class Soak:
    def __init__(
        self,
        stack: Stack,
        seed: int,
        tasks: int,
        workers: int,
        fault_rate: float,
        api_concurrency: int = API_CONCURRENCY,
    ) -> None:
        self.stack = stack
        self.seed = seed
        self.random = random.Random(seed)
        self.task_count = tasks
        self.worker_count = workers
        self.fault_rate = fault_rate
        self.figures = Figures()
        self.plan: list[Planned] = []
        self.sources: dict[str, Any] = {}  # url -> SyntheticFile
        self.permanent: set[str] = set()  # sources answering 404 for good
        self.permanent_codes: set[str] = set()  # sources whose link answered a permanent kie.ai code
        self.taken_down: set[str] = set()
        self.sent: set[str] = set()  # tasks whose callbacks the workload sent
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.aborted = threading.Event()  # the workers keep failing: the run stops, and fails
        # Lambda runs one invocation at a time per container: this process is one container, for
        # what the drain invokes (the backfill, the reconciler); the callbacks and POST /copies go to
        # the API function's containers, the stream to the events function's, and the copy workers
        # are others.
        self._container = threading.Lock()
        self.api = ApiFunction(self._start_api, api_concurrency)
        self.failed_worker_runs = 0
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"kie2s3-soak-{seed}-"))  # the workers' output
        self._worker_logs: dict[int, Path] = {}
        self._live: set[int] = set()  # the copy workers' process ids
        # This process's AWS faults: the function's requests only (callbacks, POST /copies, events).
        self.aws_faults = AwsFaults(seed, fault_rate, "function", scoped=True)
        self.faulting = True  # until the drain
        self.answers: list[checker.CallbackAnswer] = []
        self.delivered: list[dict[str, Any]] = []  # the events the bus delivered, read so far
        self.acknowledged: set[tuple[str, str]] = set()  # (task id, sample) answered 200
        self._retrying = 0
        self._retries_done = threading.Condition(self._lock)
        self._kills = random.Random(f"{seed}/kills")
        self._events: ServedContainer | None = None  # which worker runs and events batches are killed

    def invoke(self, event: dict[str, Any], context: Any = None) -> Any:
        """Invoke the function in this process's container, after any invocation under way."""
        return self._invoke(event, context)[0]

    def invoke_events(self, event: dict[str, Any], context: Any = None) -> Any:
        """The events function's invocation, in its container (a process of its own, started
        again when it died: killed mid-batch, the poller delivers the batch again)."""
        if self._events is None:
            spec = ""
            if self.faulting:
                spec = f"mid-batch,{self._kills.randint(1, EVENTS_KILL_EVERY)}"
            self.figures.containers += 1
            log = self.log_dir / f"events{self.figures.containers}.log"
            self._events = ServedContainer(self.process_env(self._events_faults()), spec, log)
        try:
            return self._events.invoke(event)
        except ContainerDied:
            self.stop_events()
            raise

    def _start_api(self, n: int) -> ServedContainer:
        """An API container (its AWS faults from the seed, under its own name)."""
        with self._lock:
            self.figures.containers += 1
        faults = {AWS_FAULTS_ENV: f"{self.seed},{self.fault_rate},api{n}"} if self.faulting else {}
        return ServedContainer(self.process_env(faults), "", self.log_dir / f"api{n}.log")

    def stop_api(self) -> None:
        """End the API's containers, their faults counted."""
        self.figures.api_concurrency = self.api.peak
        for summary in self.api.stop():
            self._count_faults("aws (api)", summary.injected)

    def _events_faults(self) -> dict[str, str]:
        if not self.faulting:
            return {}
        return {AWS_FAULTS_ENV: f"{self.seed},{self.fault_rate},events{self.figures.containers}"}

    def stop_events(self) -> None:
        """End the events container (its faults and kill counted); the next batch starts another."""
        if self._events is not None:
            summary = self._events.stop()
            self._count_faults("aws (events)", summary.injected)
            if summary.killed:
                self._count_kill(f"events {summary.killed}")
            self._events = None

    def _invoke(self, event: dict[str, Any], context: Any = None) -> tuple[Any, set[str]]:
        """The answer, and the AWS services that answered the invocation with a fault."""
        scope = self.aws_faults.scope
        with self._container:
            scope.active, scope.failed = self.faulting, set()
            try:
                return invoke(event, context), scope.failed
            finally:
                scope.active = False

    def _in_container(
        self, event: dict[str, Any], label: str, *, down: str = "", kill: str = ""
    ) -> tuple[Any, set[str], bool]:
        """The answer of a container of its own (devstack.soak.container; None if it died), the
        services that answered it with a fault, and whether it was killed: its AWS faults from
        the seed, every request to the `down` services failing, the `kill` armed."""
        with self._lock:
            self.figures.containers += 1
            name = f"{label}{self.figures.containers}"
        env = {**self.process_env(), AWS_FAULTS_ENV: f"{self.seed},{self.fault_rate},{name},{down}"}
        if kill:
            env[KILL_ENV] = kill
        done = subprocess.run(
            [sys.executable, "-m", "devstack.soak.container"],
            input=json.dumps(event),
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        answer: Any = None
        failed: set[str] = set()
        killed = False
        for line in done.stdout.splitlines():
            if line.startswith("SOAK-ANSWER "):
                answer = json.loads(line.removeprefix("SOAK-ANSWER "))
            elif line.startswith("SOAK-FAULTS "):
                injected = json.loads(line.removeprefix("SOAK-FAULTS "))["injected"]
                failed |= {kind.split(" ", 1)[0] for kind in injected}
                self._count_faults(f"aws ({label})", injected)
            elif line.startswith("SOAK-KILL "):
                killed = True
                self._count_kill(f"{label} {line.removeprefix('SOAK-KILL ')}")
        return answer, failed, killed

    def _count_kill(self, kind: str) -> None:
        with self._lock:
            self.figures.kills[kind] += 1

    def _count_faults(self, label: str, injected: dict[str, int]) -> None:
        with self._lock:
            for kind, count in injected.items():
                self.figures.faults[f"{label} {kind}"] += count

    def process_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of the function in a process of its own (a copy worker, a container)."""
        return {
            **(extra or {}),
            **self.stack.env,
            "PATH": os.environ["PATH"],
            "PYTHONPATH": f"{ROOT / 'src/handler'}:{ROOT}",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }

    # -- the workload ------------------------------------------------------------------------------

    def make_plan(self) -> None:
        """Half the tasks Market ones of 1-4 files of drawn sizes, half made from the samples of
        every family in events/ (devstack.soak.workload)."""
        rng = self.random
        for n in range(self.task_count):
            task_id = f"soak{self.seed:04d}t{n:05d}{rng.getrandbits(32):08x}"
            planned = self._market_task(task_id) if rng.random() < 0.5 else self._sample_task(task_id)
            for i, url in enumerate(planned.urls):
                size = rng.choices(SIZES, SIZE_WEIGHTS)[0]
                (file,) = serve_result_files(
                    self.stack.emulator, [url], size=size, seed=n * 16 + i + self.seed
                ).values()
                self.sources[url] = file
                planned.bytes += size
                self._plan_file_fault(planned, url, file.name, size)
            self.plan.append(planned)
        self.figures.tasks = len(self.plan)
        # One in 200 tasks' outage is the ledger's (none in a short soak: each costs a minute or so).
        outages = [p for p in self.plan if p.outage]
        for planned in rng.sample(outages, min(len(outages), self.task_count // 200)):
            planned.outage = "ledger"

    def _market_task(self, task_id: str) -> Planned:
        rng = self.random
        urls = [
            f"https://tempfile.aiquickdraw.com/s/{task_id}_{i}{rng.choice(SUFFIXES)}"
            for i in range(rng.choice([1, 1, 2, 2, 3, 4]))
        ]
        success = rng.random() > 0.08
        body = market_body(task_id, urls, state="success" if success else "fail")
        self.stack.emulator.add_task("market", task_id, body["data"])  # backfill and POST /copies by id
        race_by = rng.choice(["urls", "task", "bulk"])
        record_info_faults: Counter[str] = Counter()
        if race_by != "urls" and rng.random() < 0.3:
            code = rng.choice(RECORD_INFO_CODES)
            self.stack.emulator.inject_record_info(code, times=rng.randint(1, 2), task_id=task_id)
            record_info_faults[f"kie.ai record-info code {code}"] += 1
        outage = "gateway" if success and rng.random() < 0.04 else None
        return Planned(
            task_id=task_id,
            family="market",
            deliveries=[Delivery("market", json.dumps(body), None)],
            urls=urls if success else [],
            success=success,
            duplicates=rng.choice([1, 1, 2, 3]),
            race_copies=rng.random() < 0.25 and outage is None,
            takedown=rng.random() < 0.03,
            race_by=race_by,
            outage=outage,
            faults=record_info_faults,
        )

    def _sample_task(self, task_id: str) -> Planned:
        rng = self.random
        task = sample_task(rng, task_id)
        success = task.outcome == "success"
        return Planned(
            task_id=task_id,
            family=task.family,
            deliveries=list(task.deliveries),
            urls=[url for url, _ in task.files],
            success=success,
            duplicates=rng.choice([1, 1, 2]) if len(task.deliveries) == 1 else 1,
            race_copies=success and rng.random() < 0.2,
            takedown=rng.random() < 0.03,
        )

    def _plan_file_fault(self, planned: Planned, url: str, name: str, size: int) -> None:
        rng, emulator = self.random, self.stack.emulator
        draw = rng.random()
        if draw < 0.02:
            emulator.inject_file_fault(name, FileFault.http_status(404), times=10_000)
            planned.permanent.add(url)
            self.permanent.add(url)
            planned.faults["source 404 (permanent)"] += 1
        elif draw < 0.06:
            emulator.inject_file_fault(
                name, FileFault.http_status(rng.choice([500, 502, 503])), times=rng.randint(1, 2)
            )
            planned.faults["source 5xx"] += 1
        elif draw < 0.10 and size > 2:
            emulator.inject_file_fault(name, FileFault.truncate(rng.randint(1, size - 1)))
            planned.faults["source truncate"] += 1
        elif draw < 0.13:
            emulator.inject_file_fault(name, FileFault.reset())
            planned.faults["source reset"] += 1
        elif draw < 0.15:
            emulator.inject_file_fault(
                name, FileFault.stall(rng.randint(0, max(0, size - 1)), rng.uniform(0.5, 3))
            )
            planned.faults["source stall"] += 1
        elif draw < 0.18 and size > 0:
            emulator.inject_file_fault(name, FileFault.new_version())
            planned.faults["source new version"] += 1
        if rng.random() < 0.06:
            code = rng.choice(DOWNLOAD_URL_CODES)
            emulator.inject_download_url(code, times=rng.randint(1, 2), url=url)
            planned.faults[f"kie.ai download-url code {code}"] += 1
            if code in PERMANENT_CODES:
                planned.permanent.add(url)
                self.permanent_codes.add(url)

    def _callback(self, planned: Planned, delivery: Delivery, attempt: int = 0) -> None:
        """One delivery of a callback; kie.ai's next one on the soak's clock if it saw this fail."""
        event = callback_event(
            delivery.body, task_id=planned.task_id, hmac_key=WEBHOOK_HMAC_KEY, query=delivery.query
        )
        if planned.outage == "gateway":  # the function throttled: it never runs
            self._count_faults("api gateway", {"503 (function throttled)": 1})
            self._answered(planned, delivery, attempt, 503)
            return
        if planned.outage:
            answer, failed, _ = self._in_container(event, "outage", down="dynamodb")
        else:
            answer, failed = self.api.invoke(event)
        status = int((answer or {"statusCode": 502})["statusCode"])  # a container died: the gateway's 502
        self._answered(planned, delivery, attempt, status, failed)

    def _answered(
        self, planned: Planned, delivery: Delivery, attempt: int, status: int, failed: set[str] | None = None
    ) -> None:
        """Record what kie.ai got (`failed` None: not the function's answer), and retry as kie.ai does."""
        with self._lock:
            self.figures.callbacks += 1
            self.figures.kie_retries += attempt > 0
            self.figures.callback_answers[status] += 1
            if failed is not None:
                self.answers.append(
                    checker.CallbackAnswer(planned.task_id, delivery.sample, status, bool(failed & STORES))
                )
            if status == 200:
                self.acknowledged.add((planned.task_id, delivery.sample))
            elif attempt < len(RETRY_MINUTES):
                self._retrying += 1
                delay = RETRY_MINUTES[attempt] * SOAK_MINUTE_SECONDS
                threading.Timer(delay, self._retry, args=(planned, delivery, attempt + 1)).start()

    def _retry(self, planned: Planned, delivery: Delivery, attempt: int) -> None:
        try:
            self._callback(planned, delivery, attempt)
        finally:
            with self._lock:
                self._retrying -= 1
                self._retries_done.notify_all()

    def wait_for_retries(self) -> None:
        """Until kie.ai has no delivery left to send again."""
        with self._lock:
            self._retries_done.wait_for(lambda: self._retrying == 0)

    def lost(self) -> list[Planned]:
        """Tasks sent whose final callback no delivery got acknowledged: kie.ai gave up on them."""
        return [
            p
            for p in self.plan
            if p.task_id in self.sent
            and not any((p.task_id, d.sample) in self.acknowledged for d in p.deliveries if _final(d))
        ]

    def _copies(self, planned: Planned) -> None:
        body: dict[str, Any] = {"taskId": planned.task_id, "family": planned.family, "urls": planned.urls}
        if planned.race_by == "task":
            body = {"taskId": planned.task_id, "family": planned.family}
        elif planned.race_by == "bulk":
            body = {"taskIds": [planned.task_id], "family": planned.family}
        self.api.invoke(http_event("POST", "/copies", body=json.dumps(body)))
        with self._lock:
            self.figures.copies_requests += 1

    def _send(self, planned: Planned) -> None:
        """A single callback sent `duplicates` times at once, raced by `POST /copies`; a staged
        task's callbacks one after another, in the (shuffled) order planned."""
        with self._lock:
            self.sent.add(planned.task_id)
        *stages, last = planned.deliveries
        for delivery in stages:
            self._callback(planned, delivery)
        calls = [lambda p=planned: self._callback(p, last)] * planned.duplicates
        if planned.race_copies and planned.success:
            calls.append(lambda p=planned: self._copies(p))
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            for done in [pool.submit(c) for c in calls]:
                done.result()

    def _take_down(self, task_id: str) -> None:
        from devstack.takedown import copy_guard, takedown

        env = self.stack.env
        guard = copy_guard(self.stack.client("dynamodb"), env["IDEMPOTENCY_TABLE"], env["TASKS_TABLE"])
        with open(os.devnull, "w") as out:
            takedown(
                self.stack.client("s3"),
                self.stack.tasks_table(),
                guard,
                self.stack.bucket,
                env["OBJECT_PREFIX"],
                task_id,
                out=out,
            )
        with self._lock:
            self.taken_down.add(task_id)
            self.figures.takedowns += 1

    # -- the processes -------------------------------------------------------------------------------

    def start_worker(self, n: int, faults: bool) -> subprocess.Popen[str]:
        """A copy worker (one Lambda container) in its own process, its output to a file of its own
        (a pipe nobody reads until it exits would fill, and stop it)."""
        env = self.process_env()
        name = f"worker{n}-run{self.figures.worker_runs}"
        if faults:
            env[AWS_FAULTS_ENV] = f"{self.seed},{self.fault_rate},{name}"
            point = self._kills.choice(WORKER_KILL_POINTS)
            env[KILL_ENV] = f"{point},{self._kills.randint(1, WORKER_KILL_NTH_MAX)}"
        self.figures.worker_runs += 1
        path = self.log_dir / f"{name}.log"
        with path.open("w") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "devstack.worker",
                    "--timeout-seconds",
                    str(WORKER_TIMEOUT_SECONDS),
                    "--visibility-timeout",
                    str(WORKER_TIMEOUT_SECONDS),
                ],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self._worker_logs[process.pid] = path
        self._live.add(process.pid)
        return process

    def collect(self, process: subprocess.Popen[str]) -> None:
        """Take a stopped worker's report (its peak RSS) and the AWS faults it injected."""
        self._live.discard(process.pid)
        output = self._worker_logs.pop(process.pid).read_text(errors="replace")
        for line in output.splitlines():
            if line.startswith("WORKER-REPORT "):
                peak = json.loads(line.removeprefix("WORKER-REPORT "))["peak_rss_mib"]
                self.figures.worker_peak_rss_mib = max(self.figures.worker_peak_rss_mib, peak)
            elif line.startswith("SOAK-FAULTS "):
                summary = json.loads(line.removeprefix("SOAK-FAULTS "))
                self.figures.aws_requests += summary["requests"]
                self._count_faults("aws (workers)", summary["injected"])
            elif line.startswith("SOAK-KILL "):
                self._count_kill(f"copy worker {line.removeprefix('SOAK-KILL ')}")
                return  # killed as planned: its message comes back after its visibility timeout
        if process.returncode != 0:
            self.failed_worker_runs += 1
            print(f"worker exited {process.returncode}: {output[-1500:]}", file=sys.stderr)
            if self.failed_worker_runs > 20:
                self.aborted.set()

    def run_workers(self, faults: bool, until: threading.Event) -> None:
        """Keep `worker_count` workers running (a worker stops when the queue is empty) until `until`."""
        running = {n: self.start_worker(n, faults) for n in range(self.worker_count)}
        while running:
            for n, process in list(running.items()):
                if process.poll() is None:
                    continue
                self.collect(process)
                if until.is_set() or self.aborted.is_set():
                    del running[n]
                else:
                    running[n] = self.start_worker(n, faults)
            time.sleep(0.2)

    def sample_memory(self) -> None:
        """The peak of this process's, moto's and the live workers' RSS added up, once a second."""
        while not self._stop.wait(1.0):
            events = self._events
            pids = [
                os.getpid(),
                self.stack.moto.pid,
                *list(self._live),
                *self.api.pids,
                events.pid if events else None,
            ]
            total = sum(_rss_mib(pid) for pid in pids if pid is not None)
            self.figures.total_peak_rss_mib = max(self.figures.total_peak_rss_mib, round(total, 1))

    def pump_stream(self, stream: Any) -> None:
        while not self._stop.is_set():
            if not stream.poll_once():
                time.sleep(0.2)

    def take_events(self) -> None:
        """Read the delivered events as they come, as a subscriber would (a queue holding the whole
        run's events made each of moto's SendMessage to it, EventBridge's delivery, cost its length)."""
        while not self._stop.wait(EVENTS_READ_SECONDS):
            self.delivered += self.stack.take_events()

    # -- the run ---------------------------------------------------------------------------------------

    def workload(self, minutes: float) -> None:
        started = time.monotonic()
        deadline = started + minutes * 60
        done = threading.Event()
        workers = threading.Thread(target=self.run_workers, args=(True, done))
        workers.start()
        takedowns: list[threading.Thread] = []
        try:
            with ThreadPoolExecutor(max_workers=4) as pool:
                for planned in self.plan:
                    if time.monotonic() > deadline or self.aborted.is_set():
                        break
                    sent = pool.submit(self._send, planned)
                    if planned.takedown:  # mid-flight: its callbacks are in, its copies under way
                        sent.result()
                        thread = threading.Thread(target=self._take_down, args=(planned.task_id,))
                        thread.start()
                        takedowns.append(thread)
            self.figures.sending_seconds = time.monotonic() - started
            for thread in takedowns:
                thread.join()
            self.wait_for_retries()
        finally:
            done.set()
            workers.join()
        self.figures.workload_seconds = time.monotonic() - started
        self.figures.sent = len(self.sent)
        for planned in self.plan:  # what was planned for tasks never sent did not happen
            if planned.task_id in self.sent:
                self.figures.files += len(planned.urls)
                self.figures.bytes += planned.bytes
                self.figures.faults.update(planned.faults)
                self.figures.families[planned.family] += 1

    def drain(self, rounds: int = 10) -> None:
        """Faults off, then as an operator would: workers, the reconciler past its staleness, the DLQ redriven."""
        from devstack.redrive import redrive
        from kie2s3.handlers.wiring import get_services
        from kie2s3.logic.reconcile import reconcile

        self.faulting = False
        self.stop_api()  # kie.ai has no callback left to send
        with self._container:  # between two batches: the next one starts a container without faults
            self.stop_events()
        self.stack.emulator.clear_faults()
        for url in self.permanent:  # permanent: still refused after the drain
            self.stack.emulator.inject_file_fault(
                self.sources[url].name, FileFault.http_status(404), times=10_000
            )
        started = time.monotonic()
        sqs = self.stack.client("sqs")
        env, ids = self.stack.env, self.stack.aws.physical_ids
        dlq = _queue_url(sqs, ids["CopyDeadLetterQueue"])
        # Past a day: the reconciler aborts the uploads of workers killed mid-part (the bucket's
        # lifecycle rule would too), and re-sends what is stale.
        clock = datetime.now(UTC) + timedelta(days=1)
        self.backfill()
        for n in range(rounds):
            self.figures.drain_rounds = n + 1
            self.figures.redriven += redrive(sqs, dlq, env["COPY_QUEUE_URL"])
            _wait_in_flight(sqs, env["COPY_QUEUE_URL"], timeout=2 * WORKER_TIMEOUT_SECONDS)
            done = threading.Event()
            done.set()
            self.run_workers(False, done)
            clock += timedelta(hours=1)
            with self._container:
                result = reconcile(get_services(), now=clock)
            if (
                checker.queue_depth(sqs, env["COPY_QUEUE_URL"]) == 0
                and checker.queue_depth(sqs, dlq) == 0
                and not result.resent
            ):
                break
        self._stop.set()
        self.figures.drain_seconds = time.monotonic() - started

    def backfill(self) -> None:
        """What an operator does for the tasks kie.ai gave up on: `make backfill` of their ids,
        family by family (devstack.backfill's own loop, through this process's container)."""
        from devstack.backfill import backfill, local_sender

        lost = self.lost()
        self.figures.lost = len(lost)
        by_family: dict[str, list[str]] = {}
        for planned in lost:
            by_family.setdefault(planned.family, []).append(planned.task_id)
        with open(os.devnull, "w") as out:
            for family, task_ids in sorted(by_family.items()):
                summary = backfill(local_sender(self.invoke), family, task_ids, out=out)
                self.figures.backfilled += len(summary.recorded)

    def history(self) -> checker.History:
        self._count_faults("aws (the function in the soak's process)", dict(self.aws_faults.injected))
        env, ids = self.stack.env, self.stack.aws.physical_ids
        s3, sqs = self.stack.client("s3"), self.stack.client("sqs")
        prefix = env["OBJECT_PREFIX"]
        tasks, files = checker.read_ledger(self.stack.tasks_table())
        sources = {
            url: checker.Source(
                frozenset(v.sha256_hex() for v in self.stack.emulator.versions(file.name)),
                # An empty source answers its opening range with a 416, whose Content-Type is no
                # file's: kie2s3 opens with one request (docs/architecture.md, Copy) and stores octet-stream.
                file.served_content_type if file.size else None,
                permanent_fault=url in self.permanent or url in self.permanent_codes,
            )
            for url, file in self.sources.items()
        }
        dlqs = {}
        for logical in ("CopyDeadLetterQueue", "EventsDeadLetterQueue"):
            dlqs[logical] = checker.queue_depth(sqs, _queue_url(sqs, ids[logical]))
        return checker.History(
            prefix=prefix,
            objects=checker.read_objects(s3, self.stack.bucket, prefix),
            uploads=checker.read_uploads(s3, self.stack.bucket, prefix),
            tasks=tasks,
            files=files,
            sources=sources,
            expected={p.task_id: p.urls for p in self.plan if p.task_id in self.sent},
            taken_down=self.taken_down,
            events=self.delivered + self.stack.take_events(),
            dlq_messages=dlqs,
            callbacks=self.answers,
        )


def _final(delivery: Delivery) -> bool:
    """A callback that ends its task (a Market one, or a sample whose outcome is final)."""
    return delivery.sample not in EXPECTED or EXPECTED[delivery.sample].outcome != "not_final"


def _rss_mib(pid: int) -> float:
    """A process's resident memory now (0 once it has gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _wait_in_flight(sqs: Any, url: str, timeout: float) -> None:
    """Until the queue has a message to receive, or none at all (a killed worker's comes back
    when its visibility timeout ends)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        if int(counts["ApproximateNumberOfMessages"]) or not int(
            counts["ApproximateNumberOfMessagesNotVisible"]
        ):
            return
        time.sleep(1)


def _is_stream_batch(event: dict[str, Any]) -> bool:
    records = event.get("Records") or [{}]
    return bool(records[0].get("eventSource") == "aws:dynamodb")


def _queue_url(sqs: Any, physical_id: str) -> str:
    """A queue's URL from its physical id (its URL already, or its name)."""
    return (
        physical_id
        if physical_id.startswith("http")
        else str(sqs.get_queue_url(QueueName=physical_id)["QueueUrl"])
    )


def _print_figures(seed: int, figures: Figures) -> None:
    print(
        f"soak seed {seed}: {figures.sent} tasks sent of {figures.tasks} planned, {figures.files} files, {figures.bytes / MIB:.1f} MiB"
    )
    print("  families: " + ", ".join(f"{name} {n}" for name, n in sorted(figures.families.items())))
    print(
        f"  callbacks {figures.callbacks} (answers {dict(figures.callback_answers)}, kie.ai's retries {figures.kie_retries}), POST /copies {figures.copies_requests}, takedowns {figures.takedowns}"
    )
    print(f"  tasks kie.ai gave up on {figures.lost}, backfilled {figures.backfilled}")
    print(
        f"  worker runs {figures.worker_runs}, peak RSS {figures.worker_peak_rss_mib} MiB (MemorySize {COPY_WORKER_MEMORY_MIB}), AWS requests by workers {figures.aws_requests}"
    )
    print(
        f"  memory: peak {figures.total_peak_rss_mib:.0f} MiB RSS for the soak, moto, the workers, the API's and the events containers together"
    )
    print("  kills: " + (", ".join(f"{kind} {n}" for kind, n in sorted(figures.kills.items())) or "none"))
    print("  faults injected:")
    for kind, count in sorted(figures.faults.items()):
        print(f"    {count:6d}  {kind}")
    rate = figures.sent / figures.sending_seconds if figures.sending_seconds else 0.0
    print(
        f"  sending: {figures.sent} tasks in {figures.sending_seconds:.1f} s, {rate:.2f} tasks/s; API containers at once: up to {figures.api_concurrency}"
    )
    print(
        f"  workload {figures.workload_seconds:.1f} s, drain {figures.drain_seconds:.1f} s in {figures.drain_rounds} round(s), {figures.redriven} redriven"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="devstack.soak.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tasks", type=int, default=2200)
    parser.add_argument(
        "--minutes",
        type=float,
        default=10.0,
        help="the workload's time budget (tasks not sent by then are left out)",
    )
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--aws-fault-rate", type=float, default=0.02)
    parser.add_argument(
        "--api-concurrency",
        type=int,
        default=API_CONCURRENCY,
        help="the most API containers at once (each about 100 MiB)",
    )
    args = parser.parse_args(argv)
    with (
        local_stack(
            copy_mode="queue",
            moto=MotoServer(
                environment={
                    "MOTO_S3_DEFAULT_KEY_BUFFER_SIZE": str(MOTO_BUFFER_BYTES),
                    MOTO_ACCESS_LOG_ENV: "0",  # millions of lines nobody reads
                }
            ),
        ) as stack,
        function_environment(
            {**stack.env, "POWERTOOLS_LOG_LEVEL": "CRITICAL", "POWERTOOLS_METRICS_DISABLED": "true"}
        ),
    ):
        soak = Soak(stack, args.seed, args.tasks, args.workers, args.aws_fault_rate, args.api_concurrency)
        install(soak.aws_faults)  # before the function's first clients are built
        print(f"soak seed {args.seed}: workers' logs in {soak.log_dir}", flush=True)
        stream = stack.stream_poller(invoker=soak.invoke_events).start()
        pump = threading.Thread(target=soak.pump_stream, args=(stream,), daemon=True)
        pump.start()
        threading.Thread(target=soak.sample_memory, daemon=True).start()
        reader = threading.Thread(target=soak.take_events, daemon=True)
        reader.start()
        soak.make_plan()
        soak.workload(args.minutes)
        soak.drain()
        pump.join()
        reader.join()
        stream.drain()  # what the last writes put on the stream
        soak.stop_events()
        try:
            history = soak.history()
        except Exception:
            print(stack.moto.log_tail(), file=sys.stderr)
            raise
        _print_figures(args.seed, soak.figures)
        text, ok = checker.report(checker.check(history))
        if soak.figures.worker_peak_rss_mib > COPY_WORKER_MEMORY_MIB:
            text += f"\nFAIL  workers within MemorySize: peak {soak.figures.worker_peak_rss_mib} MiB"
            ok = False
        if soak.aborted.is_set():
            text += f"\nFAIL  workers ran: {soak.failed_worker_runs} worker processes failed"
            ok = False
        print(text)
        if not ok:
            print("taken down: " + " ".join(sorted(soak.taken_down)))
            print(f"the workers' logs: {soak.log_dir}")
            return 1
        shutil.rmtree(soak.log_dir, ignore_errors=True)  # kept only when an invariant failed
        return 0


if __name__ == "__main__":
    sys.exit(main())
