"""The network round trips of an invocation, from botocore's and urllib3's own events (`make bench`).

A `Recorder` installed in a worker's process notes every HTTP request the function makes: each
attempt of every boto3 client built after it (botocore's `before-send` to `response-received`),
and each request made through a urllib3 `PoolManager` (kie.ai's API, the source), from the call
to the moment its body is read or released. It knows nothing of the copy's code, so the same
count holds whatever shape the copy core takes.

Requests that overlap in time make one wave; the waves are the sequential round trips on the
critical path. The bookkeeping is the DynamoDB requests (the ledger and the idempotency record);
its time is what they add to the critical path: while one of them is in flight and no other
request is.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

BOOKKEEPING_SERVICE: Final = "dynamodb"
KIE_API_SERVICE: Final = "kie.ai"
SOURCE_SERVICE: Final = "source"
_TABLE_NAME = re.compile(rb'"TableName"\s*:\s*"([^"]+)"')


@dataclass(frozen=True)
class RoundTrip:
    """One HTTP request: who it went to, what it did, and when it started and ended (seconds)."""

    service: str  # botocore's service id ("s3", "dynamodb", "sqs"), "kie.ai" or "source"
    operation: str  # "PutObject", "PutItem (ledger)", "download-url", "GET Range"
    start: float
    end: float

    @property
    def label(self) -> str:
        """`service operation`, as printed."""
        return f"{self.service} {self.operation}"

    def row(self, origin: float = 0.0) -> list[Any]:
        """The JSON form: [service, operation, start, end], times relative to `origin`."""
        return [self.service, self.operation, round(self.start - origin, 6), round(self.end - origin, 6)]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> RoundTrip:
        """The inverse of `row`."""
        service, operation, start, end = row
        return cls(str(service), str(operation), float(start), float(end))


# ---------------------------------------------------------------------------------------------- arithmetic


def waves(trips: Iterable[RoundTrip]) -> list[list[RoundTrip]]:
    """The requests grouped into waves: a wave holds every request that overlaps another of it in time.

    Requests are taken in order of start; one that starts before every request so far has ended
    joins the current wave, else it opens the next one. Touching is not overlapping: a request
    that starts exactly when the wave ends waited for it.
    """
    grouped: list[list[RoundTrip]] = []
    wave_end = 0.0
    for trip in sorted(trips, key=lambda t: (t.start, t.end)):
        if grouped and trip.start < wave_end:
            grouped[-1].append(trip)
            wave_end = max(wave_end, trip.end)
        else:
            grouped.append([trip])
            wave_end = trip.end
    return grouped


def union(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The intervals merged where they overlap, in order."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _length(intervals: Iterable[tuple[float, float]]) -> float:
    return sum(end - start for start, end in intervals)


def _overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    """Total length shared by two merged interval lists."""
    shared, i, j = 0.0, 0, 0
    while i < len(a) and j < len(b):
        shared += max(0.0, min(a[i][1], b[j][1]) - max(a[i][0], b[j][0]))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return shared


def exclusive_seconds(trips: Iterable[RoundTrip], service: str) -> float:
    """How long requests of `service` were in flight while no request of another service was."""
    trips = list(trips)
    mine = union((t.start, t.end) for t in trips if t.service == service)
    others = union((t.start, t.end) for t in trips if t.service != service)
    return _length(mine) - _overlap(mine, others)


def segments(trips: Iterable[RoundTrip], starts: Sequence[float]) -> list[list[RoundTrip]]:
    """The requests of each invocation: those that started at or after its start, before the next one's.

    Requests before the first start (none, when the recorder is installed between invocations)
    belong to no invocation and are left out.
    """
    bounds = [*starts, float("inf")]
    return [[t for t in trips if bounds[n] <= t.start < bounds[n + 1]] for n in range(len(starts))]


def _counts(trips: Iterable[RoundTrip]) -> dict[str, int]:
    """Requests per `service operation`, most frequent first (then by name)."""
    counted = Counter(t.label for t in trips)
    return dict(sorted(counted.items(), key=lambda item: (-item[1], item[0])))


def summarize(trips: Sequence[RoundTrip]) -> dict[str, Any]:
    """An invocation's round trips: how many, how many sequential, which, and the bookkeeping's share."""
    grouped = waves(trips)
    bookkeeping = [t for t in trips if t.service == BOOKKEEPING_SERVICE]
    return {
        "requests": len(trips),
        "sequential": len(grouped),
        "by_operation": _counts(trips),
        "waves": [
            {
                "operations": _counts(wave),
                "ms": round((max(t.end for t in wave) - wave[0].start) * 1000, 3),
            }
            for wave in grouped
        ],
        "bookkeeping_requests": len(bookkeeping),
        "bookkeeping_sequential": len(waves(bookkeeping)),
        # What the bookkeeping adds to the critical path (the transfer ratio subtracts it) ...
        "bookkeeping_ms": round(exclusive_seconds(trips, BOOKKEEPING_SERVICE) * 1000, 3),
        # ... and the time its requests were in flight, added up.
        "bookkeeping_in_flight_ms": round(sum(t.end - t.start for t in bookkeeping) * 1000, 3),
    }


def describe_wave(wave: Mapping[str, Any]) -> str:
    """`dynamodb PutItem (ledger) + s3 UploadPart x12`: a wave's operations, as printed."""
    return " + ".join(
        label if count == 1 else f"{label} x{count}" for label, count in wave["operations"].items()
    )


# ---------------------------------------------------------------------------------------------- hooks


def on_new_clients(attach: Callable[[Any], None]) -> None:
    """Call `attach(client)` with every botocore client built from now on, on any session (also the IAM
    check's recorder, devstack.aws_calls)."""
    from botocore.client import ClientCreator

    create_client = ClientCreator.create_client

    def hooked_create_client(creator: ClientCreator, *args: Any, **kwargs: Any) -> Any:
        client = create_client(creator, *args, **kwargs)
        attach(client)
        return client

    ClientCreator.create_client = hooked_create_client  # type: ignore[method-assign,assignment]


class Recorder:
    """Records the round trips of this process's boto3 clients and urllib3 pool managers.

    `install()` hooks every boto3 client created afterwards (on any session) and every urllib3
    `PoolManager.urlopen`; clients created before it are not seen (the worker builds its event
    source mapping's SQS client first, so that receiving and deleting messages are not counted).
    DynamoDB requests are named by their table's role, from the function's TASKS_TABLE and
    IDEMPOTENCY_TABLE; urllib3 requests to KIE_API_BASE_URL's /api/ are kie.ai's, any other is the source.
    """

    def __init__(self, environ: Mapping[str, str], clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._trips: list[RoundTrip] = []
        self._open: dict[int, tuple[str, str, float]] = {}  # streamed responses not yet read or released
        self._sending = threading.local()  # botocore sends each attempt on the calling thread
        self._tables = {
            environ.get("TASKS_TABLE", ""): "ledger",
            environ.get("IDEMPOTENCY_TABLE", ""): "idempotency",
        }
        self._kie_base = environ.get("KIE_API_BASE_URL", "https://api.kie.ai").rstrip("/")
        self._installed = False

    def trips(self) -> list[RoundTrip]:
        """Every request so far; a streamed response still open counts as ending now, `(open)`."""
        now = self._clock()
        with self._lock:
            still_open = [RoundTrip(s, f"{op} (open)", start, now) for s, op, start in self._open.values()]
            return [*self._trips, *still_open]

    def _add(self, service: str, operation: str, start: float) -> None:
        trip = RoundTrip(service, operation, start, self._clock())
        with self._lock:
            self._trips.append(trip)

    def install(self) -> None:
        """Hook boto3 clients created from now on and urllib3's PoolManager (once per process)."""
        if self._installed:
            return
        self._installed = True
        self._hook_botocore()
        self._hook_urllib3()

    # -- botocore

    def _hook_botocore(self) -> None:
        on_new_clients(self.attach)

    def attach(self, client: Any) -> None:
        """Record the requests of a client built already (`install` hooks those built later)."""
        client.meta.events.register("before-send", self._before_send)
        client.meta.events.register("response-received", self._response_received)

    def detach(self, client: Any) -> None:
        """Stop recording a client's requests."""
        client.meta.events.unregister("before-send", self._before_send)
        client.meta.events.unregister("response-received", self._response_received)

    def _before_send(self, request: Any, event_name: str, **_: Any) -> None:
        # Returns None: a before-send handler that returns something replaces the HTTP response.
        service, operation = event_name.split(".", 2)[1:]
        if service == BOOKKEEPING_SERVICE:
            operation = self._dynamodb_operation(operation, request.body)
        if not hasattr(self._sending, "stack"):
            self._sending.stack = []
        self._sending.stack.append((service, operation, self._clock()))

    def _response_received(self, **_: Any) -> None:
        stack = getattr(self._sending, "stack", None)
        if stack:
            self._add(*stack.pop())

    def _dynamodb_operation(self, operation: str, body: Any) -> str:
        raw = body if isinstance(body, bytes) else str(body or "").encode()
        roles = sorted({self._tables.get(name.decode(), name.decode()) for name in _TABLE_NAME.findall(raw)})
        return f"{operation} ({', '.join(roles)})" if roles else operation

    # -- urllib3

    def _hook_urllib3(self) -> None:
        from urllib3 import PoolManager

        urlopen = PoolManager.urlopen
        recorder = self

        def hooked_urlopen(pool: PoolManager, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            service, operation = recorder._http_operation(method, url, kwargs.get("headers"))
            start = recorder._clock()
            try:
                response = urlopen(pool, method, url, *args, **kwargs)
            except Exception:
                recorder._add(service, f"{operation} (failed)", start)
                raise
            if kwargs.get("preload_content", True):
                recorder._add(service, operation, start)  # the body is read already
            else:
                recorder._until_released(response, service, operation, start)
            return response

        PoolManager.urlopen = hooked_urlopen  # type: ignore[method-assign,assignment]

    def _http_operation(self, method: str, url: str, headers: Mapping[str, str] | None) -> tuple[str, str]:
        if url.startswith(self._kie_base + "/api/"):  # the emulator serves links beside its API
            return KIE_API_SERVICE, urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
        ranged = any(name.lower() == "range" for name in headers or {})
        return SOURCE_SERVICE, f"{method} Range" if ranged else method

    def _until_released(self, response: Any, service: str, operation: str, start: float) -> None:
        """End the request when its body is read to the end (urllib3 then releases the connection),
        released or closed, whichever comes first."""
        key = id(response)
        with self._lock:
            self._open[key] = (service, operation, start)

        def finish() -> None:
            with self._lock:
                opened = self._open.pop(key, None)
            if opened is not None:
                self._add(*opened)

        for name in ("release_conn", "close"):
            original = getattr(response, name)

            def hooked(*args: Any, _original: Callable[..., Any] = original, **kwargs: Any) -> Any:
                finish()
                return _original(*args, **kwargs)

            setattr(response, name, hooked)
