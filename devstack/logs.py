"""`make logs`: the functions' logs, of the local stack or of a deployed one, with the same options.

    python -m devstack.logs [--function NAME] [--since 10m] [--follow] [--json] [--lines N] [--last] [--state-dir D]
    python -m devstack.logs --stack-name STACK [--region R] [--function NAME] [--since 10m] [--follow] [--json]

A function is named as in the template without `Function`, in kebab case: `api`, `copy-worker`,
`events`, `reconciler`, `forward`. `--since` takes `30s`, `10m`, `2h`, `1d` or an ISO 8601 time.
`--json` prints the functions' structured records only, one JSON document a line (for jq); without
it, a record is one line, `time function level message key=value …` (the fields the code logged,
the task as `task=`, an exception's type and last line), and the local stack's own lines are
printed as they are, every log's lines merged in time order, the AWS emulator's access lines (its
pollers') left out. `--last` reads the last stack's logs, which `make down` keeps. A deployed stack's log
groups are found from its resources (each function's `LoggingConfig`), read with CloudWatch Logs'
FilterLogEvents (default: the last 10 minutes).

The local path uses the standard library only (`make logs` works without .venv); boto3 and the
template are loaded for a deployed stack only.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

from devstack.cli import Parser, UserError, run

LOCAL_LOGS: Final = ("stack", "worker", "events", "moto")
"""The local stack's log files (devstack.up): the supervisor with the API, the functions processes, moto."""
# moto's access log: one line per request, most of them the pollers' (SQS ReceiveMessage, DynamoDB
# GetRecords, every second or so); what else moto says (a traceback, a warning) is kept.
_EMULATOR_ACCESS: Final = re.compile(r'^\S+ - - \[[^]]*\] "[A-Z]+ \S+ HTTP/[\d.]+" \d{3} ')
LOCAL_NAME_PREFIX: Final = "kie2s3-"
"""Locally a function's name is kie2s3-<its name> (devstack.serve.function_context)."""
DEPLOYED_DEFAULT_SINCE: Final = "10m"
FOLLOW_SECONDS: Final = 2.0
_SPAN: Final = re.compile(r"(\d+)\s*([smhd])")
_SPAN_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_LOCAL_STACK_LINE: Final = re.compile(r"\[local stack\] (\d\d):(\d\d):(\d\d) ")
_ACCESS_TIME: Final = re.compile(r"^\S+ - - \[(\d\d/\w{3}/\d{4} \d\d:\d\d:\d\d)\] ")
_SHOWN_FIRST: Final = ("timestamp", "level", "message", "function_name", "location", "service")
# Powertools' own fields, the same on every record of an invocation: the readable line leaves them out
# (JSON=1 has them); the correlation id is the task's id, shown as `task=`.
_NOT_SHOWN: Final = frozenset(
    {
        "cold_start",
        "function_arn",
        "function_memory_size",
        "function_request_id",
        "xray_trace_id",
        "sampling_rate",
        "correlation_id",
        "exception",
        "exception_name",
        "stack_trace",
    }
)


def function_name(logical_id: str) -> str:
    """A function's name in `make logs` (and, prefixed, the local stack): `CopyWorkerFunction` -> `copy-worker`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", logical_id.removesuffix("Function")).lower()


def parse_since(spec: str, now: float) -> float:
    """The epoch seconds `--since` names: `10m` before now, or an ISO 8601 time (UTC unless it says)."""
    span = _SPAN.fullmatch(spec.strip().lower())
    if span:
        return now - int(span.group(1)) * _SPAN_SECONDS[span.group(2)]
    try:
        moment = datetime.datetime.fromisoformat(spec.strip())
    except ValueError:
        raise UserError(f"SINCE={spec}: give 30s, 10m, 2h, 1d or a time such as 2026-12-07T10:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


@dataclass(frozen=True)
class Line:
    """One logged line: its text, its JSON record (when it is one), when and which function logged it."""

    text: str
    record: dict[str, Any] | None
    time: float | None
    function: str | None


def _record_time(record: Mapping[str, Any]) -> float | None:
    """The time a record carries: Powertools' `timestamp`, EMF's `_aws.Timestamp`, Lambda's `time`."""
    emf = record.get("_aws")
    if isinstance(emf, Mapping) and isinstance(emf.get("Timestamp"), int | float):
        return float(emf["Timestamp"]) / 1000
    for key in ("timestamp", "time"):
        value = record.get(key)
        if isinstance(value, str):
            try:
                return datetime.datetime.strptime(value, "%Y-%m-%d %H:%M:%S,%f%z").timestamp()
            except ValueError:
                pass
            try:
                return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None


def _record(text: str) -> dict[str, Any] | None:
    if not text.startswith("{"):
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def parse_line(text: str, *, function: str | None = None, time_: float | None = None) -> Line:
    """A line as logged; `function` and `time_` as the log's source knows them (deployed), else its own."""
    record = _record(text)
    if record is not None:
        own = "api" if record.get("localApi") == "access" else record.get("function_name")
        if function is None and isinstance(own, str):
            function = own.removeprefix(LOCAL_NAME_PREFIX)
        if time_ is None:
            time_ = _record_time(record)
    return Line(text, record, time_, function)


def _local_clock_time(text: str, day: datetime.date) -> float | None:
    """The local time a plain line starts with: the stack's `[local stack] HH:MM:SS`, or an access
    line's `[07/Dec/2026 10:00:30]` (the AWS emulator's)."""
    access = _ACCESS_TIME.search(text)
    if access:
        with contextlib.suppress(ValueError):
            return datetime.datetime.strptime(access.group(1), "%d/%b/%Y %H:%M:%S").timestamp()
    found = _LOCAL_STACK_LINE.match(text)
    if not found:
        return None
    hour, minute, second = (int(g) for g in found.groups())
    return datetime.datetime.combine(day, datetime.time(hour, minute, second)).timestamp()


def local_lines(texts: Iterable[str], day: datetime.date) -> list[Line]:
    """A local log's lines; one without a time of its own (a traceback) takes the time of the line before.

    A line that tells only a clock time takes the date of the nearest line that tells a whole time
    (before it, else after it), and `day` only in a file with none: a log read after midnight still
    sorts yesterday's lines in yesterday.
    """
    parsed = [parse_line(text) for text in texts]
    dated = [datetime.datetime.fromtimestamp(p.time, datetime.UTC).date() if p.time else None for p in parsed]
    following = next((d for d in dated if d is not None), day)
    lines: list[Line] = []
    last: float | None = None
    for line, date in zip(parsed, dated, strict=True):
        following = date or following
        moment = line.time if line.time is not None else _local_clock_time(line.text, following)
        last = moment if moment is not None else last
        lines.append(Line(line.text, line.record, last, line.function))
    return lines


@dataclass(frozen=True)
class Selection:
    """What to print: one function's lines, since a time, records only (JSON)."""

    function: str | None = None
    since: float | None = None
    as_json: bool = False

    def keeps(self, line: Line) -> bool:
        """Whether the line is printed."""
        if self.function is not None and line.function != self.function:
            return False
        if self.since is not None and (line.time is None or line.time < self.since):
            return False
        return not self.as_json or line.record is not None

    def render(self, line: Line) -> str:
        """The line as printed: its record as one JSON line, or `time function level message key=value`."""
        if line.record is None:
            return line.text
        if self.as_json:
            return json.dumps(line.record, separators=(",", ":"))
        return _readable(line)


def _metrics(record: dict[str, Any]) -> str:
    """An EMF document's metrics, `name=value` each."""
    names = [m["Name"] for d in record["_aws"].get("CloudWatchMetrics", []) for m in d.get("Metrics", [])]
    return " ".join(f"{name}={record.get(name)}" for name in names)


def _fields(record: dict[str, Any]) -> str:
    """The few key fields of a record, `key=value` each: the task first, the exception's type and last
    line (JSON=1 has the traceback), then what the record adds to the usual keys."""
    fields = {"task": record["correlation_id"]} if record.get("correlation_id") else {}
    fields.update((k, v) for k, v in record.items() if k not in _SHOWN_FIRST and k not in _NOT_SHOWN)
    if record.get("exception_name"):
        last = str(record.get("exception") or "").strip().splitlines()[-1:] or [""]
        fields["exception"] = f"{record['exception_name']}: {last[0]}".rstrip(": ")
    return " ".join(
        f"{key}={json.dumps(value) if not isinstance(value, str) else value}" for key, value in fields.items()
    )


def _readable(line: Line) -> str:
    record = dict(line.record or {})
    when = (
        datetime.datetime.fromtimestamp(line.time, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
        if line.time is not None
        else "-"
    )
    function = f"{line.function or '-':<12}"
    if "_aws" in record:  # an EMF document: the metrics it carries
        return f"{when} {function} METRIC {_metrics(record)}"
    if "type" in record and "record" in record:  # Lambda's platform record (JSON log format)
        return f"{when} {function} {record['type']} {json.dumps(record['record'])}"
    if record.pop("localApi", None) == "access":  # the local API's access log: the request's fields
        record.pop("time", None)
        record["level"] = "ACCESS"
    level = str(record.get("level", "-"))
    message = str(record.get("message", ""))
    parts = (f"{when} {function} {level:<7}", message, _fields(record))
    return " ".join(part for part in parts if part).rstrip()


# ---------------------------------------------------------------------------------------------- local


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def shown(path: Path, texts: Iterable[str], day: datetime.date) -> list[Line]:
    """A local log's lines worth reading, timed (`local_lines`): the AWS emulator's access lines (the
    pollers') left out once they have timed the lines after them."""
    lines = local_lines(texts, day)
    if path.stem != "moto":
        return lines
    return [line for line in lines if not _EMULATOR_ACCESS.match(line.text)]


def _selected(files: Sequence[Path], selection: Selection, lines: int, out: TextIO) -> dict[Path, int]:
    """The lines the selection keeps, of every file, in time order (the last `lines` without --since)."""
    offsets: dict[Path, int] = {}
    kept: list[Line] = []
    today = datetime.date.today()
    for path in files:
        text = path.read_text(errors="replace")
        offsets[path] = len(text.encode())
        kept.extend(line for line in shown(path, text.splitlines(), today) if selection.keeps(line))
    kept.sort(key=lambda line: line.time if line.time is not None else 0.0)  # stable: a file's order stays
    if selection.since is None and lines > 0:
        kept = kept[-lines:]
    for line in kept:
        print(selection.render(line), file=out)
    if selection.function is not None and not kept:
        seen = sorted(
            {line.function for path in files for line in local_lines(_read(path), today) if line.function}
        )
        print(
            f"no lines of function {selection.function} (functions in these logs: {', '.join(seen) or 'none yet'})",
            file=sys.stderr,
        )
    return offsets


def _read(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()


def local_logs(
    directory: Path, selection: Selection, lines: int, follow: bool, out: TextIO | None = None
) -> int:
    """Print the local stack's logs, one readable line per record; with follow, go on printing what
    is appended until Ctrl-C."""
    out = out or sys.stdout
    files = [directory / f"{name}.log" for name in LOCAL_LOGS if (directory / f"{name}.log").exists()]
    if not files:
        raise UserError("no local stack running, and no logs left from one: make up starts one", status=1)
    offsets = _selected(files, selection, lines, out)
    while follow:
        time.sleep(0.5)
        for path in files:
            try:
                with path.open("rb") as f:
                    f.seek(offsets[path])
                    new = f.read()
            except FileNotFoundError:
                return 0  # make down moved it
            complete = new[: new.rfind(b"\n") + 1]  # a line still being written waits for its end
            offsets[path] += len(complete)
            for line in shown(path, complete.decode(errors="replace").splitlines(), datetime.date.today()):
                if selection.keeps(line):
                    print(selection.render(line), file=out, flush=True)
    return 0


# ---------------------------------------------------------------------------------------------- deployed


def deployed_log_groups(
    template: Mapping[str, Any], resources: Sequence[Mapping[str, Any]]
) -> dict[str, str]:
    """Function name -> log group of each function the stack holds: the group its `LoggingConfig`
    names, else Lambda's default `/aws/lambda/<function>`."""
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources if r.get("PhysicalResourceId")
    }
    groups = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") not in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            continue
        if logical_id not in physical:
            continue  # a function the stack's conditions left out (forwarding off)
        group = ((resource.get("Properties") or {}).get("LoggingConfig") or {}).get("LogGroup")
        if isinstance(group, Mapping) and group.get("Ref") in physical:
            groups[function_name(logical_id)] = physical[group["Ref"]]
        else:
            groups[function_name(logical_id)] = f"/aws/lambda/{physical[logical_id]}"
    return groups


def deployed_lines(logs: Any, groups: Mapping[str, str], start: float, seen: set[str]) -> list[Line]:
    """Every event of the groups from `start` (epoch seconds) on that is not in `seen` (event ids,
    updated), merged in time order."""
    lines: list[tuple[int, str, Line]] = []
    for function, group in groups.items():
        for page in logs.get_paginator("filter_log_events").paginate(
            logGroupName=group, startTime=int(start * 1000)
        ):
            for event in page.get("events", []):
                if event["eventId"] in seen:
                    continue
                seen.add(event["eventId"])
                line = parse_line(
                    event["message"].rstrip("\n"), function=function, time_=event["timestamp"] / 1000
                )
                lines.append((event["timestamp"], event["eventId"], line))
    return [line for _, _, line in sorted(lines, key=lambda item: (item[0], item[1]))]


def deployed_logs(
    cloudformation: Any,
    logs: Any,
    stack_name: str,
    template: Mapping[str, Any],
    selection: Selection,
    *,
    follow: bool = False,
    out: TextIO = sys.stdout,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print a deployed stack's function logs the selection keeps; with follow, poll until Ctrl-C."""
    resources = cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
    groups = deployed_log_groups(template, resources)
    if selection.function is not None:
        if selection.function not in groups:
            raise UserError(
                f"FUNCTION={selection.function}: stack {stack_name} has {', '.join(sorted(groups))}", status=2
            )
        groups = {selection.function: groups[selection.function]}
    start = (
        selection.since if selection.since is not None else parse_since(DEPLOYED_DEFAULT_SINCE, time.time())
    )
    seen: set[str] = set()
    while True:
        for line in deployed_lines(logs, groups, start, seen):
            if selection.keeps(line):
                print(selection.render(line), file=out, flush=True)
            # The next poll starts a minute before the last event (events arrive late), deduplicated by id.
            start = max(start, (line.time or start) - 60)
        if not follow:
            return 0
        sleep(FOLLOW_SECONDS)


def _deployed(args: Any, selection: Selection) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from devstack.cli import aws_session
    from devstack.template import load_template

    session = aws_session(f"make logs STACK_NAME={args.stack_name}", region=args.region)
    try:
        return deployed_logs(
            session.client("cloudformation"),
            session.client("logs"),
            args.stack_name,
            load_template(),
            selection,
            follow=args.follow,
        )
    except (BotoCoreError, ClientError) as exc:
        raise UserError(f"stack {args.stack_name} in {session.region_name}: {exc}", status=1) from exc


def main(argv: Sequence[str] | None = None) -> int:
    """The local stack's logs, or a deployed stack's."""
    from devstack.running import last_logs_dir, state_dir

    parser = Parser(prog="devstack.logs", description=__doc__)
    parser.add_argument(
        "--function", help="one function's lines: api, copy-worker, events, reconciler, forward"
    )
    parser.add_argument("--since", help="30s, 10m, 2h, 1d or an ISO 8601 time")
    parser.add_argument("--follow", action="store_true", help="keep printing until Ctrl-C")
    parser.add_argument("--json", action="store_true", help="the structured records only, one JSON a line")
    parser.add_argument("--lines", type=int, default=100, help="locally: how many lines (0: all)")
    parser.add_argument(
        "--last", action="store_true", help="the logs of the last local stack (kept by make down)"
    )
    parser.add_argument("--stack-name", help="a deployed stack's logs instead of the local stack's")
    parser.add_argument("--region", help="the deployed stack's region (default: the AWS configuration's)")
    parser.add_argument(
        "--state-dir", help="the local stack's (default: $KIE2S3_STATE_DIR, else .devstack/up)"
    )
    args = parser.parse_args(argv)
    since = parse_since(args.since, time.time()) if args.since else None
    selection = Selection(args.function, since, args.json)
    if args.stack_name:
        if args.last:
            raise UserError("LAST=1 is the last local stack's logs: leave it out with STACK_NAME")
        return _deployed(args, selection)
    directory = state_dir(args.state_dir)
    if args.last:
        return local_logs(last_logs_dir(directory), selection, args.lines, follow=False)
    return local_logs(directory, selection, args.lines, args.follow)


if __name__ == "__main__":
    sys.exit(run(main))
