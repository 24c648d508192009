"""`make bench`: the copy worker against plain boto3 and urllib3 and against what a user would write
instead, its round trips per file, its memory, ranged downloads, init time, and a burst of 500
callbacks archived by two workers.

Everything runs against the local stack. Each copy is a signed Market callback through
`app.lambda_handler` (queue mode, in this process) and then `python -m devstack.worker` in its own
process, as one Lambda container; the stored object's SHA-256 is checked against the source's, and a
wrong copy fails the run. The worker counts its round trips from botocore's and urllib3's own events
(devstack.roundtrips), not from the copy's code. The plain baselines, the user's copy and the init
timings run in fresh processes of their own (`--plain`, `--user-copy`, `--callbacks`), so that their
buffers and imports do not leak into the copy's figures.

Both sides are timed warm: the worker copies a 20 MiB file before the measured one (the handler's
time of that first copy is printed apart), the plain and user children move 20 MiB before their
timed runs. Copies and the other runs alternate, and figures are medians, because the two cores are
shared with moto and the emulator (docs/benchmarks.md: how much single runs vary).
Figures go to bench/results/ (JSON and a PNG chart); targets that are missed print FAIL but exit 0.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import io
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Final, TextIO

from devstack import cost
from devstack.kie_emulator import BLOCK_SIZE, SyntheticFile
from devstack.lambda_runtime import LambdaContext, invoke, task_status_event
from devstack.roundtrips import SOURCE_SERVICE, RoundTrip, describe_wave, summarize
from devstack.sandbox import Cgroup, function_config, isolation, own_cpu_cgroups
from devstack.template import load_template

if TYPE_CHECKING:
    from devstack.stack import Stack

MIB: Final = 1024**2
SIZES: Final = (1 * MIB, 64 * MIB, 1024 * MIB)
RUNS: Final = {1 * MIB: 3, 64 * MIB: 7, 1024 * MIB: 3}
"""Rounds per size (figures are medians): two cores shared with moto make single runs vary."""
SIDE_BY_SIDE_SIZES: Final = (64 * MIB, 1024 * MIB)
"""The sizes at which each round also runs what a user would write instead (`--user-copy`)."""
SINGLE_PART_SIZE: Final = 1 * MIB
WARM_UP_SIZE: Final = 20 * MIB
"""What each worker copies first, untimed, to warm its container (and each plain child uploads):
three parts, so that the multipart path is warm too, as in a container that has copied before."""
THROTTLED_SIZE: Final = 1024 * MIB
THROTTLE_BPS: Final = 20 * MIB
"""Per-connection bandwidth of the throttled origin."""
SEED: Final = 20_240_611
"""Every source of one size has the same bytes (the seed and content type fix them), so one digest serves."""
CONTENT_TYPE: Final = "video/mp4"
IMPORT_RUNS: Final = 5
BURST_CALLBACKS: Final = 500
BURST_WORKERS: Final = 2
BURST_SEED: Final = 500
WARM_CALLBACKS: Final = 5
SUBPROCESS_TIMEOUT_SECONDS: Final = 600.0
READ_CHUNK: Final = 8 * MIB
METER_SAMPLES_KEPT: Final = 100_000
"""The server meter's samples kept (about half an hour's at its 20 ms): older ones are dropped."""
COPY_WORKER_FUNCTION: Final = "CopyWorkerFunction"
"""The function whose MemorySize, and the CPU share Lambda gives it, every copy of the bench runs under."""

# Targets (issue #14): few sequential round trips, a transfer (the copy without its bookkeeping) as
# fast as the slower of plain upload/download, flat memory, ranged downloads that beat one throttled
# stream, and an import close to a bare Powertools handler.
SEQUENTIAL_ROUND_TRIPS_MAX: Final = 6
TRANSFER_RATIO_MAX: Final = {64 * MIB: 1.10, 1024 * MIB: 1.00}
PEAK_RSS_MAX_MIB: Final = 128.0
PEAK_RSS_GROWTH_MAX_MIB: Final = 8.0
RANGED_SPEEDUP_MIN: Final = 3.0
IMPORT_RATIO_MAX: Final = 1.3

ROOT: Final = Path(__file__).resolve().parent.parent
RESULTS_DIR: Final = ROOT / "bench" / "results"
LOG_PATH: Final = RESULTS_DIR / "function.log"
RESULT_PREFIX: Final = "BENCH-RESULT "

BARE_HANDLER: Final = '''"""A bare Powertools handler: the floor for a function's import time."""
import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event, context):
    return {"statusCode": 200, "body": boto3.__version__}
'''
IMPORT_SNIPPET: Final = (
    "import time\n"
    "started = time.perf_counter()\n"
    "import {module}\n"
    "print({prefix!r} + repr(time.perf_counter() - started), flush=True)\n"
)


class BenchError(Exception):
    """A copy stored wrong bytes, or a step failed or did not finish: the run is not valid."""


@dataclass(frozen=True)
class LambdaShare:
    """What Lambda gives the copy worker: its MemorySize and that memory's CPU share (devstack.sandbox).

    The worker, the user's copy and the plain transfers each run in a cgroup of their own with that
    CPU quota; the worker and the user's copy with that memory as a hard limit too (the plain upload
    holds its whole file in memory: the CPU quota alone). Where cgroups are not available
    (`enforced` False) they run unlimited, and the bench says so.
    """

    memory_mb: int
    cpus: float
    enforced: bool

    def describe(self) -> str:
        """One line for the output."""
        if not self.enforced:
            return "Lambda's limits NOT enforced here (no cgroup v1 memory and cpu controllers): CPU and memory unlimited"
        return (
            f"under Lambda's limits for {self.memory_mb} MB: {self.cpus:.2f} vCPU (a cgroup CPU quota), "
            f"{self.memory_mb} MiB of memory (a hard limit; the plain transfers: the CPU quota alone)"
        )

    def cgroup(self, *, memory: bool) -> Cgroup | None:
        """A cgroup for one child process (None where not enforced)."""
        if not self.enforced:
            return None
        return Cgroup(self.memory_mb if memory else None, self.cpus)


def lambda_share() -> LambdaShare:
    """The copy worker's share, from template.yaml's MemorySize."""
    config = function_config(load_template(), COPY_WORKER_FUNCTION, {})
    return LambdaShare(config.memory_mb, config.cpus, isolation().cgroups)


@dataclass(frozen=True)
class _Sample:
    at: float  # time.perf_counter()
    moto: float  # CPU seconds of moto's process so far
    emulator: float  # of this process (the emulator serves its links from it)
    cgroups: dict[str, tuple[int, int, float]]  # each child's cgroup: CFS periods, throttled ones, seconds


class ServerMeter:
    """What a copy costs the servers beside it, and whether its CPU quota held it back.

    The machine's cores are shared by moto, the emulator (this process's threads) and the process
    under test, so what a copy asks of the servers counts in its time. A thread samples, every
    `interval` seconds, the CPU seconds of moto's process and of this one, and the CFS statistics
    of the cgroups of this process's children (devstack.sandbox: `nr_periods`, `nr_throttled`,
    `throttled_time`); `between` gives each one's increase over a copy's own clock.
    """

    def __init__(self, moto_pid: int, interval: float = 0.02) -> None:
        self._moto = Path(f"/proc/{moto_pid}/stat")
        self._interval = interval
        self._samples: list[_Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="server-meter", daemon=True)

    def __enter__(self) -> ServerMeter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        cgroups: dict[str, tuple[int, int, float]] = {}
        while not self._stop.wait(self._interval):
            # A cgroup removed once its child exited keeps its last figures.
            cgroups = {**cgroups, **_cgroup_stats()}
            # This process's CPU without the meter's own thread: the emulator's.
            emulator = _cpu_seconds(_OWN_STAT) - time.thread_time()
            sample = _Sample(time.perf_counter(), _cpu_seconds(self._moto), emulator, cgroups)
            with self._lock:
                self._samples.append(sample)
                if len(self._samples) > METER_SAMPLES_KEPT:
                    del self._samples[: len(self._samples) // 2]

    def between(self, start: float, seconds: float) -> dict[str, float]:
        """Moto's and the emulator's CPU seconds from `start` (a time.perf_counter() value) for
        `seconds`, and the CFS periods, throttled periods and throttled seconds of the cgroup that
        ran meanwhile (zeros without cgroups); empty when the meter did not cover the whole span."""
        end = start + seconds
        deadline = time.monotonic() + 10 * self._interval
        while (not self._samples or self._samples[-1].at < end) and time.monotonic() < deadline:
            time.sleep(self._interval)
        with self._lock:
            before = [s for s in self._samples if s.at <= start]
            after = [s for s in self._samples if s.at >= end]
        if not before or not after:
            return {}
        first, last = before[-1], after[0]
        # The child's cgroup is the one that ran meanwhile: the others' figures did not move.
        cfs = max(
            (
                tuple(b - a for a, b in zip(first.cgroups[name], last.cgroups[name], strict=True))
                for name in first.cgroups.keys() & last.cgroups.keys()
            ),
            default=(0, 0, 0.0),
        )
        return {
            "moto_cpu_seconds": round(last.moto - first.moto, 3),
            "emulator_cpu_seconds": round(last.emulator - first.emulator, 3),
            "cfs_periods": int(cfs[0]),
            "cfs_throttled_periods": int(cfs[1]),
            "cfs_throttled_seconds": round(float(cfs[2]), 3),
        }


_OWN_STAT: Final = Path("/proc/self/stat")
_CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(stat: Path) -> float:
    """A process's user and system CPU seconds, every thread's (0 once it is gone)."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _cgroup_stats() -> dict[str, tuple[int, int, float]]:
    """The CFS statistics of every CPU cgroup this process made for a child (devstack.sandbox)."""
    found: dict[str, tuple[int, int, float]] = {}
    for path in own_cpu_cgroups():
        with contextlib.suppress(OSError, KeyError, ValueError):
            stat = dict(line.split() for line in (path / "cpu.stat").read_text().splitlines())
            found[path.name] = (
                int(stat["nr_periods"]),
                int(stat["nr_throttled"]),
                int(stat["throttled_time"]) / 1e9,
            )
    return found


def _say(text: str = "") -> None:
    print(text, file=sys.__stdout__, flush=True)


def _mib(size: int) -> str:
    return f"{size // MIB} MiB" if size < 1024 * MIB else f"{size // (1024 * MIB)} GiB"


# ---------------------------------------------------------------------------------------------- processes


def _process_env(stack_env: dict[str, str], pythonpath: str | None = None) -> dict[str, str]:
    """Exactly the function's environment, plus what a Python process needs to start."""
    path = pythonpath or f"{ROOT / 'src/handler'}:{ROOT}"
    return {**stack_env, "PATH": os.environ["PATH"], "PYTHONPATH": path}


def _run(
    command: Sequence[str], env: dict[str, str], log: TextIO, what: str, cgroup: Cgroup | None = None
) -> str:
    """Run a child to completion (killed on timeout or interrupt), in `cgroup` when given (removed
    afterwards); its stdout, logged; BenchError on failure."""
    process = subprocess.Popen(
        cgroup.wrap(command) if cgroup else list(command),
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = process.communicate(timeout=SUBPROCESS_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{what}: no answer within {SUBPROCESS_TIMEOUT_SECONDS:.0f} s") from exc
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        killed = cgroup is not None and cgroup.oom_killed()
        if cgroup is not None:
            cgroup.remove()
    log.write(f"\n===== {what}: exit {process.returncode}\n{out}\n----- stderr\n{err}\n")
    log.flush()
    if process.returncode != 0:
        why = " (killed past its memory limit)" if killed else ""
        raise BenchError(f"{what} exited with {process.returncode}{why}:\n{err[-3000:]}")
    return out


def _result_line(out: str, prefix: str, what: str) -> str:
    for line in out.splitlines():
        if line.startswith(prefix):
            return line.removeprefix(prefix)
    raise BenchError(f"{what} printed no {prefix.strip()} line")


def _bench_child(
    stack_env: dict[str, str], log: TextIO, what: str, *args: str, cgroup: Cgroup | None = None
) -> dict[str, Any]:
    command = [sys.executable, "-m", "devstack.bench", *args]
    out = _run(command, _process_env(stack_env), log, what, cgroup)
    result: dict[str, Any] = json.loads(_result_line(out, RESULT_PREFIX, what))
    return result


# ---------------------------------------------------------------------------------------------- copy


class Copier:
    """Copies synthetic files through the real handler and worker, and checks every stored byte."""

    def __init__(self, stack: Stack, log: TextIO, share: LambdaShare, meter: ServerMeter) -> None:
        self.stack = stack
        self.log = log
        self.share = share  # every worker runs under it, as the copy worker's Lambda container
        self.meter = meter  # what each copy cost moto and the emulator, and its CPU throttling
        self._digests: dict[int, str] = {}
        # The in-process callbacks log at WARNING only: their logs and metrics go to the log file anyway.
        self._function_env = {**stack.env, "POWERTOOLS_LOG_LEVEL": "WARNING"}

    def source_sha256(self, size: int) -> str:
        """SHA-256 of the bench's source bytes of this size (computed once per size)."""
        if size not in self._digests:
            self._digests[size] = SyntheticFile("digest", size, CONTENT_TYPE, seed=SEED).sha256_hex()
        return self._digests[size]

    def serve(self, size: int) -> tuple[str, str, SyntheticFile]:
        """A fresh task id, and a file served at a kie.ai-looking result URL of that task."""
        task_id = uuid.uuid4().hex
        url = f"https://tempfile.aiquickdraw.com/p/{task_id}_0.mp4"
        file = SyntheticFile(f"bench-{task_id}.mp4", size, CONTENT_TYPE, seed=SEED)
        self.stack.emulator.add_file(file, result_url=url)
        return task_id, url, file

    def copy(self, size: int, what: str) -> dict[str, Any]:
        """One copy by a warm worker process: its seconds, peak RSS and round trips, and the verified object.

        The worker first copies a 20 MiB warm-up file (its first invocation pays the lazy imports, the
        clients and the secrets, as a new Lambda container's does), then the measured file; the clock
        and the round trips cover the measured invocation only, as the plain baselines' clocks start
        after their clients.
        """
        from devstack.lambda_runtime import function_environment

        warm_task, warm_url, _warm_file = self.serve(WARM_UP_SIZE)
        task_id, url, file = self.serve(size)
        with function_environment(self._function_env):
            for task, link in ((warm_task, warm_url), (task_id, url)):
                status, _ = _invoke_json(_callback(task, [link]))
                if status != 200:
                    raise BenchError(f"{what}: the callback answered {status}")
        worker = [
            sys.executable,
            "-m",
            "devstack.worker",
            "--preload",
            "--warm-up",
            "1",
            "--max-messages",
            "2",
        ]
        out = _run(
            [*worker, "--round-trips"],
            _process_env(self.stack.env),
            self.log,
            f"worker ({what})",
            self.share.cgroup(memory=True),
        )
        report: dict[str, Any] = json.loads(_result_line(out, "WORKER-REPORT ", f"worker ({what})"))
        if report["task_ids"] != [warm_task, task_id]:
            raise BenchError(
                f"{what}: the worker handled {report['task_ids']}, expected [{warm_task}, {task_id}]"
            )
        (rows,) = report["round_trips"]  # the measured invocation's
        round_trips = summarize([RoundTrip.from_row(row) for row in rows])
        if not any(label.startswith(f"{SOURCE_SERVICE} ") for label in round_trips["by_operation"]):
            raise BenchError(f"{what}: the round-trip hooks saw no GET of the source: {round_trips}")
        servers = self.meter.between(report["measured_started_at"], float(report["seconds"]))
        self.verify(warm_task, WARM_UP_SIZE, f"{what} (warm-up)")
        verified = self.verify(task_id, size, what)
        return {
            "bytes": size,
            "seconds": float(report["seconds"]),
            "mib_per_s": size / MIB / float(report["seconds"]),
            "cold_warm_up_seconds": float(report["warm_up_seconds"]),
            "worker_cpu_seconds": float(report["cpu_seconds"]),
            "cpu_seconds": float(report["measured_cpu_seconds"]),
            "started_at": report["measured_started_at"],
            "peak_rss_mib": float(report["peak_rss_mib"]),
            "init_rss_mib": float(report.get("init_rss_mib", 0.0)),
            "source_gets": self.stack.emulator.file_requests[file.name],
            "servers": servers,
            "round_trips": round_trips,
            "round_trip_log": rows,  # [service, operation, start s, end s] from the invocation's start
            **verified,
        }

    def verify(self, task_id: str, size: int, what: str) -> dict[str, Any]:
        """The task is copied and the stored object has exactly the source's bytes; then it is deleted."""
        from devstack.lambda_runtime import function_environment

        with function_environment(self._function_env):
            status, document = _invoke_json(task_status_event(task_id))
        if status != 200 or document.get("state") != "copied":
            raise BenchError(f"{what}: task {task_id} is not copied: {json.dumps(document)[:2000]}")
        (entry,) = document["files"]
        expected = self.source_sha256(size)
        if entry["sha256"] != expected or entry["bytes"] != size:
            raise BenchError(
                f"{what}: the ledger records {entry['bytes']} bytes, sha256 {entry['sha256']}; "
                f"the source has {size} bytes, sha256 {expected}"
            )
        readback = self.check_stored(entry["bucket"], entry["key"], size, what)
        return {"key": entry["key"], "sha256": expected, "verify_readback_seconds": round(readback, 3)}

    def check_stored(self, bucket: str, key: str, size: int, what: str) -> float:
        """The object holds exactly the source's bytes of this size (BenchError else); then it is deleted.

        Returns the seconds its read-back took.
        """
        s3 = self.stack.client("s3")
        digest = _Sha256()
        started = time.perf_counter()
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in body.iter_chunks(READ_CHUNK):
            digest.update(chunk)
        readback = time.perf_counter() - started
        expected = self.source_sha256(size)
        if digest.size != size or digest.hexdigest() != expected:
            raise BenchError(
                f"{what}: WRONG BYTES in s3://{bucket}/{key}: {digest.size} bytes, "
                f"sha256 {digest.hexdigest()}; the source has {size} bytes, sha256 {expected}"
            )
        s3.delete_object(Bucket=bucket, Key=key)  # moto holds objects in memory
        return readback


class _Sha256:
    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes) -> None:
        self._digest.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _callback(task_id: str, urls: list[str]) -> dict[str, Any]:
    from devstack.callbacks import callback_event, market_body
    from devstack.stack import WEBHOOK_HMAC_KEY

    return callback_event(
        market_body(task_id, urls, model="veo3_fast"), task_id=task_id, hmac_key=WEBHOOK_HMAC_KEY
    )


def _invoke_json(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    answer = invoke(event)
    body: dict[str, Any] = json.loads(answer["body"]) if answer.get("body") else {}
    return int(answer["statusCode"]), body


# ---------------------------------------------------------------------------------------------- phases


def bench_sizes(
    copier: Copier, stack_env: dict[str, str], log: TextIO, sizes: Sequence[int] = SIZES
) -> list[dict[str, Any]]:
    """Rounds of each size: a copy, a plain upload and download, and (64 MiB, 1 GiB) a user's copy."""
    _say(
        f"\n{'size':>8} {'copy s':>8} {'MiB/s':>7} {'upload s':>9} {'download s':>11} {'ratio':>6}"
        f" {'bookkeeping ms':>15} {'transfer ratio':>15} {'(range)':>11} {'RSS MiB':>8}"
    )
    rows: list[dict[str, Any]] = []
    for size in sizes:
        # The runs of a round follow each other, so that a slower spell of the machine or of moto
        # weighs on every side alike.
        rounds = [_round(copier, size, n + 1, stack_env, log) for n in range(RUNS[size])]
        row = size_row(size, rounds)
        rows.append(row)
        transfer = row["transfer_ratio_runs"]
        _say(
            f"{_mib(size):>8} {row['copy']['seconds']:>8.3f} {row['copy']['mib_per_s']:>7.1f}"
            f" {row['plain_upload_seconds']:>9.3f} {row['plain_download_seconds']:>11.3f} {row['ratio']:>6.2f}"
            f" {row['round_trips']['bookkeeping_ms']:>15.1f} {row['transfer_ratio']:>15.3f}"
            f" {min(transfer):>5.2f}-{max(transfer):<5.2f} {row['copy']['peak_rss_mib']:>8.1f}"
        )
    cold = statistics.median(run["cold_warm_up_seconds"] for row in rows for run in row["copy"]["runs"])
    _say(
        f"medians of {'/'.join(str(RUNS[size]) for size in sizes)} rounds, each a copy by a warm worker (the "
        "handler's time) then a plain boto3 upload and urllib3 download of the same bytes; ratio = copy s / "
        "max(upload s, download s);\nbookkeeping = the DynamoDB round trips' time on the critical path (in "
        "flight while no other request is); transfer ratio = (copy s - bookkeeping s) / max(upload s, "
        "download s),\nboth ratios the median of the rounds' own (range: lowest-highest round); RSS = the "
        f"worker's peak ({rows[0]['copy']['init_rss_mib']:.0f} MiB of it after imports, before the first "
        f"batch)\na new container's first copy ({_mib(WARM_UP_SIZE)}, untimed above): {cold:.3f} s, median of "
        f"{sum(len(row['copy']['runs']) for row in rows)}"
    )
    _print_round_trips(rows)
    _print_side_by_side(rows, copier.share)
    return rows


def _round(copier: Copier, size: int, n: int, stack_env: dict[str, str], log: TextIO) -> dict[str, Any]:
    """One round: the copy, the plain runs of the same bytes and, at some sizes, the user's copy."""
    copy = copier.copy(size, f"copy {_mib(size)} #{n}")
    _task, _url, file = copier.serve(size)
    link = copier.stack.emulator.download_link(file.name)
    share = copier.share
    plain = _bench_child(
        stack_env,
        log,
        f"plain {_mib(size)} #{n}",
        *("--plain", str(size), "--link", link),
        cgroup=share.cgroup(memory=False),
    )
    user = None
    if size in SIDE_BY_SIDE_SIZES:
        what = f"user copy {_mib(size)} #{n}"
        user = _bench_child(
            stack_env,
            log,
            what,
            *("--user-copy", str(size), "--link", link),
            cgroup=share.cgroup(memory=True),
        )
        user["servers"] = copier.meter.between(user["started_at"], user["seconds"])
        user["verify_readback_seconds"] = copier.check_stored(
            stack_env["BUCKET_NAME"], user["key"], size, what
        )
    return {"copy": copy, "plain": plain, "user": user}


def size_row(size: int, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """A size's figures from its rounds: medians, the rounds' own ratios, round trips, the user's copy."""
    copies = [r["copy"] for r in rounds]
    plain_runs = [r["plain"] for r in rounds]
    users = [r["user"] for r in rounds if r["user"] is not None]
    copy = _summary(copies)
    copy.update(
        bytes=size,
        mib_per_s=size / MIB / copy["seconds"],
        source_gets=max(run["source_gets"] for run in copies),
    )
    upload = statistics.median(run["upload_seconds"] for run in plain_runs)
    download = statistics.median(run["download_seconds"] for run in plain_runs)
    paired = round_ratios([c["seconds"] for c in copies], plain_runs)
    transfer = round_ratios([transfer_seconds(c) for c in copies], plain_runs)
    return {
        "bytes": size,
        "mib": size / MIB,
        "copy": copy,
        "plain_upload_seconds": upload,
        "plain_download_seconds": download,
        "plain_upload_runs": [run["upload_seconds"] for run in plain_runs],
        "plain_download_runs": [run["download_seconds"] for run in plain_runs],
        "ratio": statistics.median(paired),
        "ratio_runs": paired,
        "ratio_of_medians": copy["seconds"] / max(upload, download),
        "transfer_ratio": statistics.median(transfer),
        "transfer_ratio_runs": transfer,
        "round_trips": round_trip_figures([c["round_trips"] for c in copies]),
        "user_copy": _summary(users) if users else None,
    }


def transfer_seconds(copy: dict[str, Any]) -> float:
    """A copy's time without its bookkeeping: the DynamoDB round trips' time on the critical path."""
    seconds: float = copy["seconds"] - copy["round_trips"]["bookkeeping_ms"] / 1000
    return seconds


def round_ratios(copy_seconds: list[float], plain_runs: list[dict[str, float]]) -> list[float]:
    """Each round's copy time over the slower plain transfer of the same round.

    A round is a copy and the plain runs right after it: a slow spell of the machine weighs on both
    sides of its ratio.
    """
    return [
        seconds / max(plain["upload_seconds"], plain["download_seconds"])
        for seconds, plain in zip(copy_seconds, plain_runs, strict=True)
    ]


def round_trip_figures(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """A size's round trips over its copies (`devstack.roundtrips.summarize` of each).

    `typical` is the median copy by sequential count (then requests), whose waves are printed; the
    counts of every copy are kept, and the bookkeeping's time is the median of the copies'.
    """
    ordered = sorted(summaries, key=lambda r: (r["sequential"], r["requests"]))
    return {
        "typical": ordered[(len(ordered) - 1) // 2],
        "requests_runs": [r["requests"] for r in summaries],
        "sequential_runs": [r["sequential"] for r in summaries],
        "bookkeeping_requests_runs": [r["bookkeeping_requests"] for r in summaries],
        "bookkeeping_sequential_runs": [r["bookkeeping_sequential"] for r in summaries],
        "bookkeeping_ms": statistics.median(r["bookkeeping_ms"] for r in summaries),
        "bookkeeping_in_flight_ms": statistics.median(r["bookkeeping_in_flight_ms"] for r in summaries),
    }


def _spread(values: list[int]) -> str:
    """`5`, or `5-6` when the runs differ."""
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def _print_round_trips(rows: list[dict[str, Any]]) -> None:
    _say(
        "\nround trips per copied file: the measured invocation's HTTP requests, from botocore's and "
        "urllib3's events;\nsequential = waves of requests that overlap in time, each wave counted once "
        "(lowest-highest over the rounds); bookkeeping = DynamoDB (ledger + idempotency)"
    )
    _say(
        f"{'size':>8} {'requests':>9} {'sequential':>11} {'bookkeeping:':>13} {'requests':>9}"
        f" {'sequential':>11} {'ms (critical path)':>19} {'ms (in flight)':>15}"
    )
    for row in rows:
        trips = row["round_trips"]
        _say(
            f"{_mib(row['bytes']):>8} {_spread(trips['requests_runs']):>9} {_spread(trips['sequential_runs']):>11}"
            f" {'':>13} {_spread(trips['bookkeeping_requests_runs']):>9}"
            f" {_spread(trips['bookkeeping_sequential_runs']):>11} {trips['bookkeeping_ms']:>19.1f}"
            f" {trips['bookkeeping_in_flight_ms']:>15.1f}"
        )
    for row in rows:
        typical = row["round_trips"]["typical"]
        _say(f"{_mib(row['bytes'])}, the median copy's {typical['sequential']} waves:")
        for n, wave in enumerate(typical["waves"], start=1):
            _say(f"  {n:>3} {wave['ms']:>9.1f} ms  {describe_wave(wave)}")


def _print_side_by_side(rows: list[dict[str, Any]], share: LambdaShare) -> None:
    _say(
        "\nside by side, same run: kie2s3's copy against what a user would write instead, boto3's "
        "upload_fileobj fed the urllib3\ndownload stream (a process of its own, warm as the worker: "
        f"{_mib(WARM_UP_SIZE)} first); medians of the rounds; CPU = the process's, every thread; RSS = its peak;"
        f"\nboth {share.describe()}"
    )
    _say(
        f"{'size':>8} {'kie2s3 s':>9} {'CPU s':>7} {'RSS MiB':>8}   {'user s':>9} {'CPU s':>7} {'RSS MiB':>8}"
        f" {'kie2s3 / user s':>16}"
    )
    for row in rows:
        user = row["user_copy"]
        if user is None:
            continue
        copy = row["copy"]
        _say(
            f"{_mib(row['bytes']):>8} {copy['seconds']:>9.3f} {copy['cpu_seconds']:>7.3f} {copy['peak_rss_mib']:>8.1f}"
            f"   {user['seconds']:>9.3f} {user['cpu_seconds']:>7.3f} {user['peak_rss_mib']:>8.1f}"
            f" {copy['seconds'] / user['seconds']:>16.2f}"
        )
    _print_servers(rows)


def _print_servers(rows: list[dict[str, Any]]) -> None:
    """What each side's copies cost the servers on the same cores, and how often the CPU quota held
    them back (medians of the rounds; ServerMeter)."""
    _say(
        "what the copies cost the servers on the same cores (CPU seconds over each copy's own clock), "
        "and the CPU quota's hold on each copy\n(CFS periods of 100 ms that ran out of quota, and the "
        "time held back); medians of the rounds"
    )
    _say(
        f"{'size':>8} {'':>7} {'moto CPU s':>11} {'emulator CPU s':>15} {'throttled':>10} {'of periods':>11}"
        f" {'held back s':>12}"
    )
    for row in rows:
        if row["user_copy"] is None:  # the sizes side by side only, as the table above
            continue
        for side, summary in (("kie2s3", row["copy"]), ("user", row["user_copy"])):
            servers = summary.get("servers")
            if not servers:
                continue
            _say(
                f"{_mib(row['bytes']):>8} {side:>7} {servers['moto_cpu_seconds']:>11.3f}"
                f" {servers['emulator_cpu_seconds']:>15.3f} {servers['cfs_throttled_periods']:>10.0f}"
                f" {servers['cfs_periods']:>11.0f} {servers['cfs_throttled_seconds']:>12.3f}"
            )


def copy_profile(rows: list[dict[str, Any]]) -> cost.CopyProfile:
    """The copy's requests per file as this run counted them: its single-part size's median copy, and
    its multipart ones split into fixed requests and requests per part (from the smallest multipart size)."""
    by_size = {row["bytes"]: row["round_trips"]["typical"]["by_operation"] for row in rows}
    multipart = min(size for size in by_size if size > cost.COPY_PART_BYTES)
    return cost.CopyProfile.from_counts(
        by_size[SINGLE_PART_SIZE], by_size[multipart], cost.parts_of(multipart, cost.COPY_PART_BYTES)
    )


def print_cost(profile: cost.CopyProfile, source: str) -> list[str]:
    """The estimated AWS cost per 1,000 files, kie2s3 beside the plain upload_fileobj copy."""
    lines = cost.table(profile=profile)
    _say(f"\nestimated AWS cost per {cost.FILES:,} files, from {source} (python -m devstack.cost):")
    _say("\n".join([*lines, *cost.notes()]))
    return lines


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median seconds (wall and CPU), what the servers spent (ServerMeter) and the highest peak RSS
    of a size's runs (copies or user copies)."""
    metered = [run["servers"] for run in runs if run.get("servers")]
    return {
        "seconds": statistics.median(run["seconds"] for run in runs),
        "cpu_seconds": statistics.median(run["cpu_seconds"] for run in runs),
        "servers": {name: statistics.median(m[name] for m in metered) for name in metered[0]}
        if metered
        else {},
        "peak_rss_mib": max(run["peak_rss_mib"] for run in runs),
        "init_rss_mib": max(run["init_rss_mib"] for run in runs),
        "runs": runs,
    }


def bench_throttled(copier: Copier) -> dict[str, Any]:
    """1 GiB from an origin limited per connection: with Range support, then without."""
    emulator = copier.stack.emulator
    _say(f"\nthrottled origin: {THROTTLE_BPS // MIB} MiB/s per connection, {_mib(THROTTLED_SIZE)}")
    try:
        emulator.bandwidth_limit_bps = THROTTLE_BPS
        emulator.accept_ranges = True
        ranged = copier.copy(THROTTLED_SIZE, "throttled copy, Range supported")
        _say(f"  Range supported: {ranged['seconds']:8.3f} s  ({ranged['source_gets']} GETs of the link)")
        emulator.accept_ranges = False
        single = copier.copy(THROTTLED_SIZE, "throttled copy, Range ignored")
        _say(f"  Range ignored:   {single['seconds']:8.3f} s  ({single['source_gets']} GETs of the link)")
    finally:
        emulator.bandwidth_limit_bps = None
        emulator.accept_ranges = True
    speedup = single["seconds"] / ranged["seconds"]
    _say(f"  speed-up:        {speedup:8.2f} x")
    return {
        "bytes": THROTTLED_SIZE,
        "bandwidth_limit_bps": THROTTLE_BPS,
        "ranged": ranged,
        "single": single,
        "speedup": speedup,
    }


def bench_init(copier: Copier, stack_env: dict[str, str], log: TextIO) -> dict[str, Any]:
    """Import time of app vs a bare Powertools handler, and a cold vs a warm callback."""
    with tempfile.TemporaryDirectory(prefix="kie2s3-bench-") as bare_dir:
        (Path(bare_dir) / "bare_handler.py").write_text(BARE_HANDLER)
        bare_env = _process_env(stack_env, pythonpath=bare_dir)
        app_runs, bare_runs = [], []
        for _ in range(IMPORT_RUNS):  # alternating, as the copies and plain runs do
            app_runs.append(_import_seconds("app", _process_env(stack_env), log))
            bare_runs.append(_import_seconds("bare_handler", bare_env, log))
        events_path = Path(bare_dir) / "callbacks.json"
        events = []
        for _ in range(1 + WARM_CALLBACKS):
            task_id, url, _file = copier.serve(MIB)
            events.append(_callback(task_id, [url]))
        events_path.write_text(json.dumps(events))
        callbacks = _bench_child(stack_env, log, "callback timings", "--callbacks", str(events_path))
    # The callbacks queued copy jobs that no worker will take: leave the queue empty.
    copier.stack.client("sqs").purge_queue(QueueUrl=stack_env["COPY_QUEUE_URL"])
    app_s, bare_s = statistics.median(app_runs), statistics.median(bare_runs)
    result = {
        "import_app_seconds": app_s,
        "import_bare_seconds": bare_s,
        # Paired as the copies are: each import of app against the bare import right after it.
        "import_ratio": statistics.median(a / b for a, b in zip(app_runs, bare_runs, strict=True)),
        "import_ratio_of_medians": app_s / bare_s,
        "import_app_runs": app_runs,
        "import_bare_runs": bare_runs,
        **callbacks,
    }
    _say("\ninit")
    _say(f"  import app:             {app_s * 1000:8.0f} ms (median of {IMPORT_RUNS})")
    _say(f"  import bare handler:    {bare_s * 1000:8.0f} ms (boto3 + Powertools Logger, Tracer, Metrics)")
    _say(f"  ratio:                  {result['import_ratio']:8.2f} (median of the {IMPORT_RUNS} pairs)")
    _say(f"  first callback (cold):  {callbacks['cold_callback_seconds'] * 1000:8.0f} ms")
    _say(
        f"  warm callback:          {callbacks['warm_callback_seconds'] * 1000:8.0f} ms (median of {WARM_CALLBACKS})"
    )
    return result


def _import_seconds(module: str, env: dict[str, str], log: TextIO) -> float:
    snippet = IMPORT_SNIPPET.format(module=module, prefix=RESULT_PREFIX)
    out = _run([sys.executable, "-c", snippet], env, log, f"import {module}")
    return float(_result_line(out, RESULT_PREFIX, f"import {module}"))


def bench_burst(copier: Copier) -> dict[str, Any]:
    """500 signed callbacks in a row (1 to 3 small files each), then two workers at once.

    Prints the callbacks' acknowledgement times and how long the workers took to archive every
    file; then checks that each file is archived once, from one download-url call: a file missing,
    stored twice or resolved twice fails the run.
    """
    from devstack.callbacks import serve_result_files
    from devstack.lambda_runtime import function_environment

    stack = copier.stack
    rng = random.Random(BURST_SEED)
    tasks: dict[str, list[str]] = {}
    for n in range(BURST_CALLBACKS):
        task = f"burst{n:03d}{rng.getrandbits(32):08x}"
        urls = [
            f"https://tempfile.aiquickdraw.com/p/{task}_{i}{rng.choice(['.png', '.mp4', '.jpg'])}"
            for i in range(rng.randint(1, 3))
        ]
        for i, url in enumerate(urls):
            serve_result_files(stack.emulator, [url], size=rng.randint(1, 64) * 1024, seed=n * 3 + i)
        tasks[task] = urls
    files = sum(len(urls) for urls in tasks.values())
    _say(f"\nburst: {len(tasks)} callbacks, {files} files, {BURST_WORKERS} workers")
    ack_ms: list[float] = []
    started = time.perf_counter()
    with function_environment(copier._function_env):
        for task, urls in tasks.items():
            sent = time.perf_counter()
            status, _ = _invoke_json(_callback(task, urls))
            ack_ms.append((time.perf_counter() - sent) * 1000)
            if status != 200:
                raise BenchError(f"burst: the callback of {task} answered {status}")
        acked = time.perf_counter() - started
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "devstack.worker"],
                env=_process_env(stack.env),
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=copier.log,
                text=True,
            )
            for _ in range(BURST_WORKERS)
        ]
        reports = []
        for worker in workers:
            out, _ = worker.communicate(timeout=SUBPROCESS_TIMEOUT_SECONDS)
            if worker.returncode != 0:
                raise BenchError(f"burst: a worker exited with {worker.returncode}")
            reports.append(json.loads(_result_line(out, "WORKER-REPORT ", "burst worker")))
        stack.poller().drain()  # anything a worker left to a redelivery
        total = time.perf_counter() - started
        _verify_burst(copier, tasks)
    result = {
        "callbacks": len(tasks),
        "files": files,
        "workers": BURST_WORKERS,
        "worker_messages": [report["messages"] for report in reports],
        "ack_ms_mean": statistics.mean(ack_ms),
        "ack_ms_p95": statistics.quantiles(ack_ms, n=20)[-1],
        "ack_ms_max": max(ack_ms),
        "acks_seconds": acked,
        "total_seconds": total,
        "files_per_second": files / (total - acked),
    }
    _say(
        f"  acknowledgements: mean {result['ack_ms_mean']:.1f} ms, p95 {result['ack_ms_p95']:.1f} ms, "
        f"max {result['ack_ms_max']:.1f} ms; all {acked:.1f} s"
    )
    _say(
        f"  archived once each: {files} files in {total - acked:.1f} s after the last callback "
        f"({result['files_per_second']:.1f} files/s; workers took {result['worker_messages']} messages)"
    )
    return result


def _verify_burst(copier: Copier, tasks: dict[str, list[str]]) -> None:
    """Every task copied; each file stored under one key, once, from one download-url call."""
    stack = copier.stack
    expected: set[str] = set()
    for task, urls in tasks.items():
        status, document = _invoke_json(task_status_event(task))
        if status != 200 or document.get("state") != "copied" or len(document["files"]) != len(urls):
            raise BenchError(f"burst: task {task} is not copied: {json.dumps(document)[:2000]}")
        expected.update(entry["key"] for entry in document["files"])
        resolved = [stack.emulator.download_url_calls[url] for url in urls]
        if resolved != [1] * len(urls):
            raise BenchError(f"burst: task {task}'s links were resolved {resolved} times, not once each")
    pages = stack.client("s3").get_paginator("list_objects_v2").paginate(Bucket=stack.bucket)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    # A key holds its task id as a path segment; the archived callback bodies are not files.
    stored = [k for k in keys if "/callbacks/" not in k and any(part in tasks for part in k.split("/"))]
    if sorted(stored) != sorted(expected):
        raise BenchError(
            f"burst: {len(stored)} objects stored for {len(expected)} files "
            f"(missing {sorted(expected - set(stored))[:5]}, extra {sorted(set(stored) - expected)[:5]})"
        )


# ---------------------------------------------------------------------------------------------- targets


def targets(
    rows: list[dict[str, Any]], throttled: dict[str, Any], init: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each target with its measured value, its limit and whether it is met."""
    by_size = {row["bytes"]: row for row in rows}
    checks: list[dict[str, Any]] = []

    def at_most(name: str, value: float, limit: float) -> None:
        checks.append({"target": name, "value": round(value, 3), "limit": limit, "pass": value <= limit})

    def at_least(name: str, value: float, limit: float) -> None:
        checks.append(
            {
                "target": name,
                "value": round(value, 3),
                "limit": limit,
                "at_least": True,
                "pass": value >= limit,
            }
        )

    sequential = max(by_size[SINGLE_PART_SIZE]["round_trips"]["sequential_runs"])
    at_most(
        f"sequential round trips of a {_mib(SINGLE_PART_SIZE)} single-part copy (its rounds' highest)",
        sequential,
        SEQUENTIAL_ROUND_TRIPS_MAX,
    )
    for size, limit in TRANSFER_RATIO_MAX.items():
        at_most(
            f"transfer ratio {_mib(size)}: (copy - bookkeeping) / max(plain upload, plain download)",
            by_size[size]["transfer_ratio"],
            limit,
        )
    rss_1g = by_size[1024 * MIB]["copy"]["peak_rss_mib"]
    rss_64m = by_size[64 * MIB]["copy"]["peak_rss_mib"]
    at_most("peak RSS of the 1 GiB copy, MiB", rss_1g, PEAK_RSS_MAX_MIB)
    at_most(
        "peak RSS 1 GiB copy minus the 64 MiB copy's, MiB", abs(rss_1g - rss_64m), PEAK_RSS_GROWTH_MAX_MIB
    )
    at_least("throttled origin: ranged / single stream speed-up", throttled["speedup"], RANGED_SPEEDUP_MIN)
    at_most("import of app / bare Powertools handler", init["import_ratio"], IMPORT_RATIO_MAX)
    return checks


# ---------------------------------------------------------------------------------------------- output


def _git() -> dict[str, Any]:
    executable = shutil.which("git")

    def git(*args: str) -> str:
        if executable is None:
            return ""
        done = subprocess.run([executable, *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD"), "src_dirty": bool(git("status", "--porcelain", "--", "src"))}


def write_results(results: dict[str, Any], stamp: str) -> list[Path]:
    """bench-<stamp>.json, latest.json and latest.png under bench/results/."""
    text = json.dumps(results, indent=2) + "\n"
    paths = [RESULTS_DIR / f"bench-{stamp}.json", RESULTS_DIR / "latest.json"]
    for path in paths:
        path.write_text(text)
    chart = RESULTS_DIR / "latest.png"
    _chart(results, chart)
    return [*paths, chart]


def _chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["sizes"]
    labels = [_mib(row["bytes"]) for row in rows]
    series: dict[str, list[float | None]] = {
        "copy (worker)": [row["copy"]["mib_per_s"] for row in rows],
        "user's copy (upload_fileobj of the stream)": [
            row["mib"] / row["user_copy"]["seconds"] if row["user_copy"] else None for row in rows
        ],
        "plain upload (boto3)": [row["mib"] / row["plain_upload_seconds"] for row in rows],
        "plain download (urllib3)": [row["mib"] / row["plain_download_seconds"] for row in rows],
    }
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.2
    for n, (name, values) in enumerate(series.items()):
        shown = [(i + (n - 1.5) * width, v) for i, v in enumerate(values) if v is not None]
        bars = left.bar([x for x, _ in shown], [v for _, v in shown], width, label=name)
        left.bar_label(bars, fmt="%.0f", fontsize=8)
    left.set_xticks(range(len(rows)), labels)
    left.set_ylabel("MiB/s (higher is better)")
    left.set_title("Copy vs a user's copy and plain transfers, local stack")
    left.legend(fontsize=8)

    throttled = results["throttled"]
    names = ["Range supported", "Range ignored\n(single stream)"]
    seconds = [throttled["ranged"]["seconds"], throttled["single"]["seconds"]]
    bars = right.bar(names, seconds, 0.5, color=["tab:green", "tab:gray"])
    right.bar_label(bars, fmt="%.1f s", fontsize=9)
    right.set_ylabel("seconds (lower is better)")
    right.set_title(
        f"{_mib(throttled['bytes'])} from a {throttled['bandwidth_limit_bps'] // MIB} MiB/s-per-connection "
        f"origin\nspeed-up {throttled['speedup']:.2f} x"
    )
    fig.suptitle(f"kie2s3 bench {results['timestamp']}  ({results['git']['commit'][:10]})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _print_targets(checks: list[dict[str, Any]]) -> None:
    _say("\ntargets")
    for check in checks:
        verdict = "PASS" if check["pass"] else "FAIL"
        sign = ">=" if check.get("at_least") else "<="
        _say(f"  {verdict}  {check['target']}: {check['value']:g} (target {sign} {check['limit']:g})")
    failed = sum(not check["pass"] for check in checks)
    _say(f"  {len(checks) - failed} of {len(checks)} targets met" + (f", {failed} FAILED" if failed else ""))


# ---------------------------------------------------------------------------------------------- children


def _plain_s3_client() -> Any:
    """boto3's S3 client as a user would build it, on the function's environment (the local endpoint).

    Payloads unsigned, as boto3 leaves them on https when a checksum goes with them (and as the copy
    sends them): on the local plain-http endpoint boto3 would add a SHA-256 pass of its own.
    """
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(s3={"payload_signing_enabled": False}))


def plain_main(size: int, link: str) -> dict[str, Any]:
    """One plain boto3 upload of the source's bytes from memory, then one plain urllib3 GET of a link."""
    import urllib3

    file = SyntheticFile("plain.mp4", size, CONTENT_TYPE, seed=SEED)
    data = b"".join(file.iter_bytes(chunk=BLOCK_SIZE))
    s3 = _plain_s3_client()
    bucket = os.environ["BUCKET_NAME"]
    # Warm, as the copy's worker is: a first upload pays boto3's lazy loading and the connections.
    warm_up = b"".join(SyntheticFile("warm-up.mp4", WARM_UP_SIZE, CONTENT_TYPE).iter_bytes(chunk=BLOCK_SIZE))
    for body in (warm_up, data):
        key = f"bench/plain-upload/{uuid.uuid4().hex}"
        started = time.perf_counter()
        s3.upload_fileobj(io.BytesIO(body), bucket, key)
        upload = time.perf_counter() - started
        stored = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
        s3.delete_object(Bucket=bucket, Key=key)
        if stored != len(body):
            raise BenchError(f"plain upload stored {stored} bytes of {len(body)}")
    del data, body, warm_up

    http = urllib3.PoolManager()
    http.request("GET", link, headers={"Range": f"bytes=0-{WARM_UP_SIZE - 1}"})  # warm, likewise
    buffer = bytearray(MIB)
    received = 0
    started = time.perf_counter()
    response = http.request("GET", link, preload_content=False, decode_content=False)
    try:
        if response.status != 200:
            raise BenchError(f"plain download answered HTTP {response.status}")
        while count := response.readinto(buffer):
            received += count
    finally:
        response.release_conn()
    download = time.perf_counter() - started
    if received != size:
        raise BenchError(f"plain download read {received} bytes of {size}")
    return {"upload_seconds": upload, "download_seconds": download}


def user_copy_main(size: int, link: str) -> dict[str, Any]:
    """What a user would write instead of kie2s3: boto3's `upload_fileobj` fed the urllib3 download stream.

    Warm as the worker is: a first, untimed copy of the link's first 20 MiB (a ranged GET). The clock
    covers the GET and the upload; the stored object is left for the bench to read back and delete.
    """
    import urllib3

    from devstack.worker import peak_rss_mib

    s3 = _plain_s3_client()
    http = urllib3.PoolManager()
    bucket = os.environ["BUCKET_NAME"]
    init_rss_mib = peak_rss_mib()

    def copy(headers: dict[str, str]) -> tuple[str, float, float]:
        key = f"bench/user-copy/{uuid.uuid4().hex}"
        started, cpu = time.perf_counter(), time.process_time()
        response = http.request("GET", link, headers=headers, preload_content=False, decode_content=False)
        try:
            if response.status not in (200, 206):
                raise BenchError(f"the user's download answered HTTP {response.status}")
            s3.upload_fileobj(response, bucket, key)
        finally:
            response.release_conn()
        return key, time.perf_counter() - started, time.process_time() - cpu

    warm_key, _, _ = copy({"Range": f"bytes=0-{WARM_UP_SIZE - 1}"})
    s3.delete_object(Bucket=bucket, Key=warm_key)
    started_at = time.perf_counter()
    key, seconds, cpu_seconds = copy({})
    return {
        "key": key,
        "started_at": started_at,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_rss_mib": peak_rss_mib(),
        "init_rss_mib": init_rss_mib,
    }


def callbacks_main(events_path: Path) -> dict[str, Any]:
    """Import app, then invoke it with each callback event: the first is cold, the rest warm."""
    events = json.loads(events_path.read_text())
    started = time.perf_counter()
    from app import lambda_handler

    imported = time.perf_counter() - started
    seconds: list[float] = []
    for event in events:
        started = time.perf_counter()
        answer = lambda_handler(json.loads(json.dumps(event)), LambdaContext())
        seconds.append(time.perf_counter() - started)
        if answer["statusCode"] != 200:
            raise BenchError(f"callback answered {answer['statusCode']}: {answer.get('body')}")
    return {
        "cold_import_seconds": imported,
        "cold_callback_seconds": seconds[0],
        "warm_callback_seconds": statistics.median(seconds[1:]),
        "warm_callback_runs": seconds[1:],
    }


# ---------------------------------------------------------------------------------------------- main


def _load(load: tuple[float, float, float]) -> str:
    """The machine's load averages, as printed: the bench shares its cores with whatever else runs."""
    return f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1, 5, 15 min)"


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(*, side_by_side_only: bool = False) -> int:
    """Start the local stack, run every phase, print and store the figures.

    `side_by_side_only`: only the rounds of the sizes compared with the user's copy (64 MiB and
    1 GiB: the copy, the plain transfers and the user's copy), their figures stored apart
    (`side-by-side-<stamp>.json`); no targets, throttled origin, init, burst or cost.
    """
    from devstack.stack import local_stack

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    began = time.perf_counter()
    git = _git()
    share = lambda_share()
    load_before = os.getloadavg()
    _say(
        f"kie2s3 bench {stamp}: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"commit {git['commit'][:10]}{' (src/ modified)' if git['src_dirty'] else ''}; {_load(load_before)}"
    )
    _say(f"the copy worker, the user's copy and the plain transfers run {share.describe()}")
    with (
        LOG_PATH.open("w") as log,
        contextlib.redirect_stdout(log),
        local_stack(copy_mode="queue") as stack,
        ServerMeter(stack.moto.pid) as meter,
    ):
        _say(f"local stack up: moto {stack.moto.endpoint_url}, kie.ai emulator {stack.emulator.base_url}")
        copier = Copier(stack, log, share, meter)
        if side_by_side_only:
            rows = bench_sizes(copier, stack.env, log, SIDE_BY_SIDE_SIZES)
            return _side_by_side_results(rows, stamp, git, share, load_before, began)
        rows = bench_sizes(copier, stack.env, log)
        throttled = bench_throttled(copier)
        init = bench_init(copier, stack.env, log)
        burst = bench_burst(copier)
    checks = targets(rows, throttled, init)
    cost_table = print_cost(
        copy_profile(rows),
        "the copy's requests this run counted, the callback's and the events function's that "
        "tests/integration/test_round_trips.py counts",
    )
    load_after = os.getloadavg()
    results = {
        **_run_facts(stamp, git, share, load_before, load_after),
        "sizes": rows,
        "throttled": throttled,
        "init": init,
        "burst": burst,
        "targets": checks,
        "cost": cost_table,
        "total_seconds": round(time.perf_counter() - began, 1),
    }
    paths = write_results(results, stamp)
    _print_targets(checks)
    _say(
        f"\nfigures: {', '.join(str(p.relative_to(ROOT)) for p in paths)}; function logs: {LOG_PATH.relative_to(ROOT)}"
    )
    _say(f"bench took {results['total_seconds']:.0f} s; {_load(load_after)}")
    return 0


def _run_facts(
    stamp: str,
    git: dict[str, Any],
    share: LambdaShare,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> dict[str, Any]:
    """What every results file says of its run: when, which commit, which machine, which limits."""
    return {
        "timestamp": stamp,
        "git": git,
        "machine": {
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_before": load_before,
            "load_average_after": load_after,
        },
        "lambda_share": {"memory_mb": share.memory_mb, "cpus": share.cpus, "enforced": share.enforced},
    }


def _side_by_side_results(
    rows: list[dict[str, Any]],
    stamp: str,
    git: dict[str, Any],
    share: LambdaShare,
    load_before: tuple[float, float, float],
    began: float,
) -> int:
    """Store a side-by-side-only run's figures (not latest.json: --cost needs a whole run's)."""
    load_after = os.getloadavg()
    results = {
        **_run_facts(stamp, git, share, load_before, load_after),
        "sizes": rows,
        "total_seconds": round(time.perf_counter() - began, 1),
    }
    path = RESULTS_DIR / f"side-by-side-{stamp}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    _say(f"\nfigures: {path.relative_to(ROOT)}; function logs: {LOG_PATH.relative_to(ROOT)}")
    _say(f"bench took {results['total_seconds']:.0f} s; {_load(load_after)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`make bench`, or one of its child processes (--plain, --user-copy, --callbacks)."""
    parser = argparse.ArgumentParser(prog="python -m devstack.bench", description=__doc__)
    parser.add_argument("--plain", type=int, metavar="BYTES", help="child: plain upload and download")
    parser.add_argument(
        "--user-copy", type=int, metavar="BYTES", help="child: boto3's upload_fileobj of the download stream"
    )
    parser.add_argument("--link", help="child: the download link for --plain and --user-copy")
    parser.add_argument(
        "--callbacks", type=Path, metavar="EVENTS_JSON", help="child: cold and warm callbacks"
    )
    parser.add_argument(
        "--side-by-side",
        action="store_true",
        help="only the 64 MiB and 1 GiB rounds beside the user's copy (about 2 minutes): no targets",
    )
    parser.add_argument(
        "--cost",
        type=Path,
        metavar="RESULTS_JSON",
        help="only the cost table, from the requests a recorded run counted (bench/results/latest.json)",
    )
    args = parser.parse_args(argv)
    if args.cost is not None:
        try:
            rows = json.loads(args.cost.read_text())["sizes"]
        except (OSError, ValueError, KeyError) as exc:
            parser.error(f"--cost {args.cost}: not the results of a make bench run ({exc})")
        print_cost(copy_profile(rows), f"the copy's requests in {args.cost}")
        return 0
    for size, child in ((args.plain, plain_main), (args.user_copy, user_copy_main)):
        if size is not None:
            if not args.link:
                parser.error("--plain and --user-copy need --link")
            _say(RESULT_PREFIX + json.dumps(child(size, args.link)))
            return 0
    if args.callbacks is not None:
        _say(RESULT_PREFIX + json.dumps(callbacks_main(args.callbacks)))
        return 0
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        return run(side_by_side_only=args.side_by_side)
    except BenchError as exc:
        _say(f"\nBENCH FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        _say("interrupted: local stack stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
