"""What archiving a file costs in AWS, estimated from the requests counted per file (`make bench`).

An estimate, not a measurement: the requests are those the local stack counts (devstack.roundtrips,
tests/integration/test_round_trips.py), the functions' memory is the template's, and a function's
duration is modelled — bytes at about 75 MB/s (Lambda's sustained network, design.md) plus a fixed
time per sequential round trip — because the local stack's timings are not Lambda's. Prices are
entered by hand (us-east-1, list prices, no free tier), each with the page it comes from.

    python -m devstack.cost     the table for 1,000 files of 2 MB, 20 MB and 200 MB
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

PRICES_DATE: Final = "2026-12-07"
PRICES_REGION: Final = "us-east-1"


@dataclass(frozen=True)
class Price:
    """A list price: `usd` for every `per` units of `unit`, from `page`."""

    usd: float
    per: int
    unit: str
    page: str

    def of(self, units: float) -> float:
        """The price of `units` units, in USD."""
        return self.usd * units / self.per


_LAMBDA: Final = "https://aws.amazon.com/lambda/pricing/"
PRICES: Final = {
    "lambda_gb_second": Price(0.0000133334, 1, "GB-second of Lambda duration, arm64", _LAMBDA),
    "lambda_request": Price(0.20, 1_000_000, "Lambda requests", _LAMBDA),
    "http_api_request": Price(
        1.00,
        1_000_000,
        "HTTP API requests (first 300 million)",
        "https://aws.amazon.com/api-gateway/pricing/",
    ),
    "s3_put": Price(
        0.005, 1_000, "S3 Standard PUT, COPY, POST, LIST requests", "https://aws.amazon.com/s3/pricing/"
    ),
    "s3_get": Price(0.0004, 1_000, "S3 Standard GET, HEAD requests", "https://aws.amazon.com/s3/pricing/"),
    "s3_gb_month": Price(
        0.023, 1, "GB-month of S3 Standard storage (first 50 TB)", "https://aws.amazon.com/s3/pricing/"
    ),
    "dynamodb_write_unit": Price(
        0.625,
        1_000_000,
        "DynamoDB on-demand write request units",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    ),
    "dynamodb_read_unit": Price(
        0.125,
        1_000_000,
        "DynamoDB on-demand read request units",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    ),
    "sqs_request": Price(
        0.40, 1_000_000, "SQS standard queue requests (64 KB chunks)", "https://aws.amazon.com/sqs/pricing/"
    ),
    "eventbridge_event": Price(
        1.00,
        1_000_000,
        "EventBridge custom events put (64 KB chunks)",
        "https://aws.amazon.com/eventbridge/pricing/",
    ),
    "secrets_call": Price(
        0.05, 10_000, "Secrets Manager API calls", "https://aws.amazon.com/secrets-manager/pricing/"
    ),
    "xray_trace": Price(5.00, 1_000_000, "X-Ray traces recorded", "https://aws.amazon.com/xray/pricing/"),
    "log_gb": Price(
        0.50, 1, "GB of CloudWatch Logs ingested (standard)", "https://aws.amazon.com/cloudwatch/pricing/"
    ),
    # kie.ai's docs do not say that download-url costs credits (kie-api.md): counted, priced at nothing.
    "kie_call": Price(
        0.0, 1, "kie.ai download-url calls (no price stated by kie.ai)", "https://docs.kie.ai/"
    ),
}

MB: Final = 1_000_000
MIB: Final = 1024**2
BYTES_PER_SECOND: Final = 75 * MB
"""Lambda's sustained network throughput (design.md, Limits): the modelled speed of a copy."""
ROUND_TRIP_SECONDS: Final = 0.02
"""The modelled time of one sequential request to an AWS service or kie.ai from Lambda."""
LOG_BYTES_PER_INVOCATION: Final = 2_000
"""Logs ingested per invocation: a few Powertools JSON lines, the EMF metrics and Lambda's platform lines."""
TRANSACT_ITEMS: Final = {
    "dynamodb TransactWriteItems (ledger)": 3,
    "dynamodb TransactWriteItems (idempotency, ledger)": 2,
}
"""Items in each TransactWriteItems: the callback's for a one-file task (the file's item, its source
marker and the check that its task is not taken down), and a copy's opening write (its idempotency
record, and the same check)."""
COPY_PART_BYTES: Final = 8 * MIB
"""The copy's part size (kie2s3.logic.services.DEFAULT_SHAPE); a file of at most one part is one PutObject."""
SIZES: Final = (2 * MB, 20 * MB, 200 * MB)
FILES: Final = 1_000

# DynamoDB capacity units per request, assuming items under 1 KB and strongly consistent reads of at
# most 4 KB (a transactional write costs 2 units per item).
_DYNAMODB_UNITS: Final = {
    "PutItem": ("dynamodb_write_unit", 1),
    "UpdateItem": ("dynamodb_write_unit", 1),
    "DeleteItem": ("dynamodb_write_unit", 1),
    "TransactWriteItems": ("dynamodb_write_unit", 2),  # per item (TRANSACT_ITEMS)
    "GetItem": ("dynamodb_read_unit", 1),
    "Query": ("dynamodb_read_unit", 1),
}
_S3_GET_CLASS: Final = frozenset({"GetObject", "HeadObject"})
# Lambda's trigger of each kind of function: what it bills per invocation besides Lambda's request.
# The SQS event source mapping receives and deletes each message (one batch per message at low rates);
# Lambda's reads of a DynamoDB stream are free.
_TRIGGERS: Final[Mapping[str, Mapping[str, int]]] = {
    "http": {"http_api_request": 1},
    "sqs": {"sqs_request": 2},
    "stream": {},
    "direct": {},
}


def billed(label: str) -> tuple[str, int] | None:
    """The price and units a counted request bills: `s3 UploadPart` -> ("s3_put", 1).

    Labels are devstack.roundtrips': `<service> <operation>`, DynamoDB's with its table's role in
    parentheses. None for what AWS does not bill per request (the source's GET: data into AWS is free;
    EventBridge's PutEvents: it bills the events, counted apart).
    """
    service, _, operation = label.partition(" ")
    operation = operation.split(" (", 1)[0]
    match service:
        case "s3":
            return ("s3_get" if operation in _S3_GET_CLASS else "s3_put"), 1
        case "dynamodb":
            if operation not in _DYNAMODB_UNITS:
                raise ValueError(f"no capacity units known for DynamoDB {operation}")
            unit, units = _DYNAMODB_UNITS[operation]
            return unit, units * TRANSACT_ITEMS.get(label, 1)
        case "sqs":
            return "sqs_request", 1
        case "secrets-manager":
            return "secrets_call", 1
        case "kie.ai":
            return "kie_call", 1
        case "source" | "eventbridge":
            return None
    raise ValueError(f"no price known for {label!r}")


@dataclass(frozen=True)
class Invocation:
    """One function invocation on a file's way: what triggers it, its memory, requests and bytes."""

    function: str
    memory_mb: int
    trigger: str  # a key of _TRIGGERS
    requests: Mapping[str, int]  # label -> count, as devstack.roundtrips names them
    sequential: int  # round trips on the critical path
    bytes_moved: int = 0
    events: int = 0  # EventBridge entries put

    def seconds(self) -> float:
        """The modelled duration: the sequential round trips plus the bytes at BYTES_PER_SECOND."""
        return self.sequential * ROUND_TRIP_SECONDS + self.bytes_moved / BYTES_PER_SECOND

    def units(self) -> dict[str, float]:
        """What it bills, price key -> units."""
        units: dict[str, float] = {
            "lambda_request": 1,
            "lambda_gb_second": self.memory_mb / 1024 * self.seconds(),
            "xray_trace": 1,  # Tracing: Active; sampling records fewer above 1 request a second
            "log_gb": LOG_BYTES_PER_INVOCATION / 1e9,
            "eventbridge_event": self.events,
        }
        for key, count in _TRIGGERS[self.trigger].items():
            units[key] = units.get(key, 0) + count
        for label, count in self.requests.items():
            bill = billed(label)
            if bill is not None:
                units[bill[0]] = units.get(bill[0], 0) + bill[1] * count
        return units


@dataclass(frozen=True)
class Estimate:
    """The cost of `files` files of `size` bytes: USD per price key, and the storage per month."""

    size: int
    files: int
    usd: Mapping[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        """USD for the files, every request and duration, storage excluded."""
        return sum(self.usd.values())

    @property
    def storage_per_month(self) -> float:
        """USD a month to keep the files in S3 Standard."""
        return PRICES["s3_gb_month"].of(self.files * self.size / 1e9)


def estimate(invocations: Iterable[Invocation], size: int, files: int = FILES) -> Estimate:
    """The cost of `files` files, each taking `invocations`."""
    usd: dict[str, float] = {}
    for invocation in invocations:
        for key, units in invocation.units().items():
            usd[key] = usd.get(key, 0.0) + PRICES[key].of(units * files)
    return Estimate(size, files, usd)


# ---------------------------------------------------------------------------------------------- the paths


@dataclass(frozen=True)
class CopyProfile:
    """The copy worker's requests per file: those of a single-part file, and of a multipart one as
    fixed requests plus requests per part (devstack.roundtrips labels)."""

    single: Mapping[str, int]
    multipart_fixed: Mapping[str, int]
    per_part: Mapping[str, int]

    def requests(self, size: int) -> dict[str, int]:
        """The requests of one copy of `size` bytes."""
        parts = parts_of(size, COPY_PART_BYTES)
        if parts == 1:
            return dict(self.single)
        counted = dict(self.multipart_fixed)
        for label, count in self.per_part.items():
            counted[label] = counted.get(label, 0) + count * parts
        return counted

    @classmethod
    def from_counts(cls, single: Mapping[str, int], multipart: Mapping[str, int], parts: int) -> CopyProfile:
        """Split a counted multipart copy of `parts` parts into fixed and per-part requests: an
        operation counted a multiple of `parts` times runs once (or more) per part."""
        per_part = {label: n // parts for label, n in multipart.items() if parts > 1 and n % parts == 0}
        fixed = {label: n for label, n in multipart.items() if label not in per_part}
        return cls(dict(single), fixed, per_part)


def parts_of(size: int, part_bytes: int) -> int:
    """How many parts a file of `size` bytes is sent in (at least one)."""
    return max(1, math.ceil(size / part_bytes))


# What tests/integration/test_round_trips.py counts for a one-file Market task (it checks these).
CALLBACK_REQUESTS: Final = {
    "dynamodb GetItem (ledger)": 1,
    "s3 PutObject": 1,  # the raw callback body
    "dynamodb UpdateItem (ledger)": 1,
    "dynamodb Query (ledger)": 2,
    "dynamodb TransactWriteItems (ledger)": 1,
    "sqs SendMessageBatch": 1,
}
COPY_PROFILE: Final = CopyProfile(
    single={
        "dynamodb TransactWriteItems (idempotency, ledger)": 1,  # its record, fenced on its task
        "kie.ai download-url": 1,
        "source GET": 1,
        "s3 PutObject": 1,
        "dynamodb UpdateItem (idempotency)": 1,
        "dynamodb UpdateItem (ledger)": 1,
    },
    multipart_fixed={
        "dynamodb TransactWriteItems (idempotency, ledger)": 1,  # its record, fenced on its task
        "kie.ai download-url": 1,
        "s3 CreateMultipartUpload": 1,
        "s3 CompleteMultipartUpload": 1,
        "s3 PutObjectTagging": 1,
        "dynamodb UpdateItem (idempotency)": 1,
        "dynamodb UpdateItem (ledger)": 1,
    },
    per_part={"source GET Range": 1, "s3 UploadPart": 1},
)
EVENTS_REQUESTS: Final = {"dynamodb Query (ledger)": 1, "eventbridge PutEvents": 1}
EVENTS_PER_FILE: Final = 2  # File Archived and, for a one-file task, Task Archived
COPY_SEQUENTIAL: Final = {True: 6, False: 7}  # single part, multipart (docs/benchmarks.md)


def memory_of(template: Mapping[str, Any], logical_id: str) -> int:
    """A function's MemorySize in the template (Lambda's default, 128, when it sets none)."""
    properties = template["Resources"][logical_id].get("Properties") or {}
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    return int(properties.get("MemorySize", globals_.get("MemorySize", 128)))


def kie2s3_path(
    size: int, memory: Mapping[str, int], profile: CopyProfile = COPY_PROFILE
) -> list[Invocation]:
    """A file's invocations in queue mode: the callback, the copy, the events function."""
    single = parts_of(size, COPY_PART_BYTES) == 1
    return [
        Invocation("API (callback)", memory["ApiFunction"], "http", CALLBACK_REQUESTS, sequential=7),
        Invocation(
            "copy worker",
            memory["CopyWorkerFunction"],
            "sqs",
            profile.requests(size),
            sequential=COPY_SEQUENTIAL[single],
            bytes_moved=size,
        ),
        Invocation(
            "events",
            memory["EventsFunction"],
            "stream",
            EVENTS_REQUESTS,
            sequential=2,
            events=EVENTS_PER_FILE,
        ),
    ]


def upload_fileobj_path(size: int, memory_mb: int) -> list[Invocation]:
    """The plain copy the bench measures beside kie2s3's: one invocation, a GET of the source fed to
    boto3's `upload_fileobj` with its default TransferConfig (multipart above its threshold)."""
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig()
    if size < config.multipart_threshold:
        requests = {"source GET": 1, "s3 PutObject": 1}
    else:
        parts = parts_of(size, config.multipart_chunksize)
        requests = {
            "source GET": 1,
            "s3 CreateMultipartUpload": 1,
            "s3 UploadPart": parts,
            "s3 CompleteMultipartUpload": 1,
        }
    return [Invocation("upload_fileobj", memory_mb, "direct", requests, sequential=3, bytes_moved=size)]


def template_memory() -> dict[str, int]:
    """The memory of the functions on a file's way, from template.yaml."""
    from devstack.template import load_template

    template = load_template()
    return {
        name: memory_of(template, name) for name in ("ApiFunction", "CopyWorkerFunction", "EventsFunction")
    }


# ---------------------------------------------------------------------------------------------- the table


def _usd(value: float) -> str:
    return f"${value:.4f}" if value < 1 else f"${value:.2f}"


_GROUPS: Final = {
    "Lambda": ("lambda_request", "lambda_gb_second"),
    "API": ("http_api_request",),
    "S3 requests": ("s3_put", "s3_get"),
    "DynamoDB": ("dynamodb_write_unit", "dynamodb_read_unit"),
    "SQS": ("sqs_request",),
    "EventBridge": ("eventbridge_event",),
    "X-Ray, Logs": ("xray_trace", "log_gb"),
    "Secrets, kie.ai": ("secrets_call", "kie_call"),
}


def table(
    sizes: Sequence[int] = SIZES,
    memory: Mapping[str, int] | None = None,
    profile: CopyProfile = COPY_PROFILE,
    files: int = FILES,
) -> list[str]:
    """The cost of `files` files of each size, kie2s3 beside the plain upload_fileobj copy, as Markdown."""
    memory = dict(memory or template_memory())
    groups = list(_GROUPS)
    lines = [
        f"| per {files:,} files | path | {' | '.join(groups)} | total | S3 storage a month |",
        f"|---|---|{'---|' * len(groups)}---|---|",
    ]
    for size in sizes:
        for path, invocations in (
            ("kie2s3", kie2s3_path(size, memory, profile)),
            ("upload_fileobj", upload_fileobj_path(size, memory["CopyWorkerFunction"])),
        ):
            cost = estimate(invocations, size, files)
            cells = [_usd(sum(cost.usd.get(key, 0.0) for key in _GROUPS[g])) for g in groups]
            lines.append(
                f"| {size / MB:,.0f} MB | {path} | {' | '.join(cells)} | **{_usd(cost.total)}** "
                f"| {_usd(cost.storage_per_month)} |"
            )
    return lines


def notes() -> list[str]:
    """What the table assumes, and where its prices come from."""
    pages = sorted({price.page for price in PRICES.values()})
    return [
        f"An estimate: {PRICES_REGION} list prices entered by hand on {PRICES_DATE}, no free tier; duration "
        f"modelled as {BYTES_PER_SECOND / MB:.0f} MB/s plus {ROUND_TRIP_SECONDS * 1000:.0f} ms per sequential "
        "round trip (the local stack's timings are not Lambda's); arm64; one X-Ray trace and "
        f"{LOG_BYTES_PER_INVOCATION:,} bytes of logs per invocation; DynamoDB items under 1 KB.",
        "Prices from " + ", ".join(pages),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table from the request counts the round-trip tests establish."""
    print("\n".join([*table(), "", *notes()]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
