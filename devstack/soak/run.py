"""`make soak [SEED=n] [TASKS=n] [MINUTES=n]`: a seeded workload under faults, a drain, then the checker.

The local stack in queue mode (moto + the kie.ai emulator), copy workers in processes of their own
(devstack.soak.worker: AWS faults from botocore's before-send, per process, from the seed), the
events function over the ledger's stream, the callback and `POST /copies` routes in this process.
The workload (random.Random(seed)): Market tasks of 1-4 files from empty to multipart, failures,
callbacks sent more than once and raced by `POST /copies`, kie.ai download-url codes and source
faults (stalls, resets, truncation, 5xx, bytes changing between requests, 404 as the one permanent
fault), a few takedowns mid-flight. Then faults stop and the stack drains as an operator would (the
reconciler on a clock moved past its staleness, the DLQ redriven), and devstack.soak.checker
verifies S3, the ledger, the queues and the delivered events. Exit 1 on any violation.
"""

from __future__ import annotations

import argparse
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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devstack.callbacks import callback_event, market_body, serve_result_files
from devstack.kie_faults import FileFault
from devstack.lambda_runtime import function_environment, http_event, invoke
from devstack.soak import checker
from devstack.soak.aws_faults import ENV as AWS_FAULTS_ENV
from devstack.stack import WEBHOOK_HMAC_KEY, Stack, local_stack

ROOT = Path(__file__).resolve().parents[2]
KIB, MIB = 1024, 1024**2
# File sizes drawn from: empty, small, one part, just over a part (8 MiB: DEFAULT_SHAPE), multipart.
SIZES = [0, 1, 700, 64 * KIB, 300 * KIB, 1 * MIB, 8 * MIB + 1, 11 * MIB]
SIZE_WEIGHTS = [2, 3, 3, 6, 6, 4, 2, 1]
SUFFIXES = [".png", ".jpg", ".mp4", ".mp3", ".webp"]
# kie.ai's envelope codes on download-url: 429/455/500 are passing (kie-api.md: back off), 501
# ("generation failed") is permanent: a file whose link answered it may end failed.
DOWNLOAD_URL_CODES = [429, 455, 500, 501]
PERMANENT_CODES = frozenset({501})
COPY_WORKER_MEMORY_MIB = 1024  # template.yaml: the copy worker's MemorySize


@dataclass
class Figures:
    tasks: int = 0
    files: int = 0
    bytes: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    callbacks: int = 0
    callback_answers: Counter[int] = field(default_factory=Counter)
    copies_requests: int = 0
    takedowns: int = 0
    worker_runs: int = 0
    worker_peak_rss_mib: float = 0.0
    aws_requests: int = 0
    drain_rounds: int = 0
    redriven: int = 0
    workload_seconds: float = 0.0
    drain_seconds: float = 0.0


@dataclass
class Planned:
    task_id: str
    urls: list[str]
    success: bool
    duplicates: int
    race_copies: bool
    takedown: bool
    permanent: set[str] = field(default_factory=set)


class Soak:
    def __init__(self, stack: Stack, seed: int, tasks: int, workers: int, fault_rate: float) -> None:
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
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.aborted = threading.Event()  # the workers keep failing: the run stops, and fails
        # Lambda runs one invocation at a time per container: this process is one container (the
        # callbacks, POST /copies and the events function); the copy workers are others.
        self._container = threading.Lock()
        self.failed_worker_runs = 0
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"kie2s3-soak-{seed}-"))  # the workers' output
        self._worker_logs: dict[int, Path] = {}

    def invoke(self, event: dict[str, Any], context: Any = None) -> Any:
        """Invoke the function in this process's container, after any invocation under way."""
        with self._container:
            return invoke(event, context)

    # -- the workload ------------------------------------------------------------------------------

    def make_plan(self) -> None:
        rng = self.random
        for n in range(self.task_count):
            task_id = f"soak{self.seed:04d}t{n:05d}{rng.getrandbits(32):08x}"
            count = rng.choice([1, 1, 2, 2, 3, 4])
            urls = [
                f"https://tempfile.aiquickdraw.com/s/{task_id}_{i}{rng.choice(SUFFIXES)}"
                for i in range(count)
            ]
            planned = Planned(
                task_id=task_id,
                urls=urls,
                success=rng.random() > 0.08,
                duplicates=rng.choice([1, 1, 2, 3]),
                race_copies=rng.random() < 0.25,
                takedown=rng.random() < 0.03,
            )
            for i, url in enumerate(urls):
                size = rng.choices(SIZES, SIZE_WEIGHTS)[0]
                (file,) = serve_result_files(
                    self.stack.emulator, [url], size=size, seed=n * 16 + i + self.seed
                ).values()
                self.sources[url] = file
                self.figures.files += 1
                self.figures.bytes += size
                self._plan_file_fault(planned, url, file.name, size)
            self.plan.append(planned)
        self.figures.tasks = len(self.plan)

    def _plan_file_fault(self, planned: Planned, url: str, name: str, size: int) -> None:
        rng, emulator = self.random, self.stack.emulator
        draw = rng.random()
        if draw < 0.02:
            emulator.inject_file_fault(name, FileFault.http_status(404), times=10_000)
            planned.permanent.add(url)
            self.permanent.add(url)
            self.figures.faults["source 404 (permanent)"] += 1
        elif draw < 0.06:
            emulator.inject_file_fault(
                name, FileFault.http_status(rng.choice([500, 502, 503])), times=rng.randint(1, 2)
            )
            self.figures.faults["source 5xx"] += 1
        elif draw < 0.10 and size > 2:
            emulator.inject_file_fault(name, FileFault.truncate(rng.randint(1, size - 1)))
            self.figures.faults["source truncate"] += 1
        elif draw < 0.13:
            emulator.inject_file_fault(name, FileFault.reset())
            self.figures.faults["source reset"] += 1
        elif draw < 0.15:
            emulator.inject_file_fault(
                name, FileFault.stall(rng.randint(0, max(0, size - 1)), rng.uniform(0.5, 3))
            )
            self.figures.faults["source stall"] += 1
        elif draw < 0.18 and size > 0:
            emulator.inject_file_fault(name, FileFault.new_version())
            self.figures.faults["source new version"] += 1
        if rng.random() < 0.06:
            code = rng.choice(DOWNLOAD_URL_CODES)
            emulator.inject_download_url(code, times=rng.randint(1, 2), url=url)
            self.figures.faults[f"kie.ai download-url code {code}"] += 1
            if code in PERMANENT_CODES:
                planned.permanent.add(url)
                self.permanent_codes.add(url)

    def _callback(self, planned: Planned) -> None:
        body = market_body(planned.task_id, planned.urls, state="success" if planned.success else "fail")
        answer = self.invoke(callback_event(body, task_id=planned.task_id, hmac_key=WEBHOOK_HMAC_KEY))
        with self._lock:
            self.figures.callbacks += 1
            self.figures.callback_answers[int(answer["statusCode"])] += 1

    def _copies(self, planned: Planned) -> None:
        body = {"taskId": planned.task_id, "family": "market", "urls": planned.urls}
        self.invoke(http_event("POST", "/copies", body=json.dumps(body)))
        with self._lock:
            self.figures.copies_requests += 1

    def _send(self, planned: Planned) -> None:
        calls = [lambda p=planned: self._callback(p)] * planned.duplicates
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
        env = {**self.stack.env, "PATH": os.environ["PATH"], "PYTHONPATH": f"{ROOT / 'src/handler'}:{ROOT}"}
        name = f"worker{n}-run{self.figures.worker_runs}"
        if faults:
            env[AWS_FAULTS_ENV] = f"{self.seed},{self.fault_rate},{name}"
        self.figures.worker_runs += 1
        path = self.log_dir / f"{name}.log"
        with path.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "devstack.worker", "--visibility-timeout", "20"],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self._worker_logs[process.pid] = path
        return process

    def collect(self, process: subprocess.Popen[str]) -> None:
        """Take a stopped worker's report (its peak RSS) and the AWS faults it injected."""
        output = self._worker_logs.pop(process.pid).read_text(errors="replace")
        for line in output.splitlines():
            if line.startswith("WORKER-REPORT "):
                peak = json.loads(line.removeprefix("WORKER-REPORT "))["peak_rss_mib"]
                self.figures.worker_peak_rss_mib = max(self.figures.worker_peak_rss_mib, peak)
            elif line.startswith("SOAK-FAULTS "):
                summary = json.loads(line.removeprefix("SOAK-FAULTS "))
                self.figures.aws_requests += summary["requests"]
                for kind, count in summary["injected"].items():
                    self.figures.faults[f"aws {kind}"] += count
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

    def pump_stream(self, stream: Any) -> None:
        while not self._stop.is_set():
            if not stream.poll_once():
                time.sleep(0.2)

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
            for thread in takedowns:
                thread.join()
        finally:
            done.set()
            workers.join()
        self.figures.workload_seconds = time.monotonic() - started

    def drain(self, rounds: int = 6) -> None:
        """Faults off, then as an operator would: workers, the reconciler past its staleness, the DLQ redriven."""
        from devstack.redrive import redrive
        from kie2s3.handlers.wiring import get_services
        from kie2s3.logic.reconcile import reconcile

        self.stack.emulator.clear_faults()
        for url in self.permanent:  # permanent: still refused after the drain
            self.stack.emulator.inject_file_fault(
                self.sources[url].name, FileFault.http_status(404), times=10_000
            )
        started = time.monotonic()
        sqs = self.stack.client("sqs")
        env, ids = self.stack.env, self.stack.aws.physical_ids
        dlq = _queue_url(sqs, ids["CopyDeadLetterQueue"])
        clock = datetime.now(UTC)
        for n in range(rounds):
            self.figures.drain_rounds = n + 1
            self.figures.redriven += redrive(sqs, dlq, env["COPY_QUEUE_URL"])
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

    def history(self) -> checker.History:
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
            expected={p.task_id: p.urls for p in self.plan if p.success and p.task_id in tasks},
            taken_down=self.taken_down,
            events=self.stack.take_events(),
            dlq_messages=dlqs,
        )


def _queue_url(sqs: Any, physical_id: str) -> str:
    """A queue's URL from its physical id (its URL already, or its name)."""
    return (
        physical_id
        if physical_id.startswith("http")
        else str(sqs.get_queue_url(QueueName=physical_id)["QueueUrl"])
    )


def _print_figures(seed: int, figures: Figures) -> None:
    print(f"soak seed {seed}: {figures.tasks} tasks, {figures.files} files, {figures.bytes / MIB:.1f} MiB")
    print(
        f"  callbacks {figures.callbacks} (answers {dict(figures.callback_answers)}), POST /copies {figures.copies_requests}, takedowns {figures.takedowns}"
    )
    print(
        f"  worker runs {figures.worker_runs}, peak RSS {figures.worker_peak_rss_mib} MiB (MemorySize {COPY_WORKER_MEMORY_MIB}), AWS requests by workers {figures.aws_requests}"
    )
    print("  faults injected:")
    for kind, count in sorted(figures.faults.items()):
        print(f"    {count:6d}  {kind}")
    print(
        f"  workload {figures.workload_seconds:.1f} s, drain {figures.drain_seconds:.1f} s in {figures.drain_rounds} round(s), {figures.redriven} redriven"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="devstack.soak.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument(
        "--minutes",
        type=float,
        default=10.0,
        help="the workload's time budget (tasks not sent by then are left out)",
    )
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--aws-fault-rate", type=float, default=0.02)
    args = parser.parse_args(argv)
    with (
        local_stack(copy_mode="queue") as stack,
        function_environment(
            {**stack.env, "POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
        ),
    ):
        soak = Soak(stack, args.seed, args.tasks, args.workers, args.aws_fault_rate)
        print(f"soak seed {args.seed}: workers' logs in {soak.log_dir}", flush=True)
        stream = stack.stream_poller(invoker=soak.invoke).start()
        pump = threading.Thread(target=soak.pump_stream, args=(stream,), daemon=True)
        pump.start()
        soak.make_plan()
        soak.workload(args.minutes)
        soak.drain()
        pump.join()
        stream.drain()  # what the last writes put on the stream
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
