"""`make logs`: the same options locally and deployed — one function, since a time, records as JSON."""

import datetime
import io
import json
from pathlib import Path

import pytest
from devstack import logs
from devstack.cli import UserError
from devstack.logs import Line, Selection, deployed_log_groups, local_logs, parse_since
from devstack.template import load_template
from tests.unit.test_deploy_commands import make_dry_run

NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC).timestamp()


def _record(function: str, message: str, at: str, **fields: object) -> str:
    """A Powertools record as the local stack's functions log it."""
    return json.dumps(
        {
            "level": "INFO",
            "location": "x:1",
            "message": message,
            "timestamp": f"2026-12-07 {at},000+0000",
            "service": "kie2s3",
            "function_name": f"kie2s3-{function}",
            "function_request_id": "r-1",
            **fields,
        }
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("30s", NOW - 30),
        ("10m", NOW - 600),
        ("2h", NOW - 7200),
        ("1d", NOW - 86400),
        ("2026-12-07T11:30", NOW - 1800),
    ],
)
def test_parse_since_takes_spans_and_times(spec: str, expected: float) -> None:
    assert parse_since(spec, NOW) == expected


def test_parse_since_refuses_what_it_cannot_read() -> None:
    with pytest.raises(UserError, match="SINCE=yesterday: give 30s, 10m"):
        parse_since("yesterday", NOW)


@pytest.mark.parametrize(
    ("logical_id", "name"),
    [("ApiFunction", "api"), ("CopyWorkerFunction", "copy-worker"), ("EventsFunction", "events")],
)
def test_function_name_is_the_logical_id_in_kebab_case(logical_id: str, name: str) -> None:
    assert logs.function_name(logical_id) == name


def test_local_lines_take_the_time_of_the_line_before_when_they_have_none() -> None:
    day = datetime.date(2026, 12, 7)
    lines = logs.local_lines(
        [_record("copy-worker", "copy failed", "10:00:00"), "Traceback (most recent call last):", "  boom"],
        day,
    )
    assert [line.time for line in lines] == [NOW - 7200] * 3
    assert [line.function for line in lines] == ["copy-worker", None, None]


def test_selection_renders_a_record_readably_or_as_one_json_line() -> None:
    line = logs.parse_line(_record("copy-worker", "file archived", "10:00:00", key="kie/t/00.png", bytes=5))
    assert (
        Selection().render(line)
        == "2026-12-07 10:00:00 copy-worker  INFO    file archived key=kie/t/00.png bytes=5"
    )
    assert json.loads(Selection(as_json=True).render(line)) == line.record


def _state(tmp_path: Path) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "stack.log").write_text(
        "\n".join(
            [
                "[local stack] 09:00:00 listening",
                _record("api", "callback accepted", "09:59:00", family="market"),
                '{"localApi": "access", "time": "2026-12-07T09:59:00Z", "method": "POST", "path": "/callbacks/kie", "status": 200}',
            ]
        )
        + "\n"
    )
    (tmp_path / "worker.log").write_text(
        "\n".join(
            [
                _record("copy-worker", "download link resolved", "09:59:01"),
                _record("copy-worker", "file archived", "10:01:00", key="kie/t/00.png"),
                _record("reconciler", "reconciled", "10:02:00"),
            ]
        )
        + "\n"
    )
    (tmp_path / "moto.log").write_text(
        "\n".join(
            [
                '127.0.0.1 - - [07/Dec/2026 10:00:30] "POST / HTTP/1.1" 200 -',
                '127.0.0.1 - - [07/Dec/2026 10:00:31] "GET /kie2s3-local-archivebucket/k HTTP/1.1" 404 -',
                "WARNING: a moto warning",
            ]
        )
        + "\n"
    )
    return tmp_path


def _printed(directory: Path, selection: Selection, lines: int = 100) -> list[str]:
    out = io.StringIO()
    assert local_logs(directory, selection, lines, follow=False, out=out) == 0
    return out.getvalue().splitlines()


def test_local_logs_of_one_function(tmp_path: Path) -> None:
    printed = _printed(_state(tmp_path), Selection(function="copy-worker"))
    assert [line.split()[4:6] for line in printed] == [["download", "link"], ["file", "archived"]]


def test_local_logs_since_a_time_in_time_order_across_files(tmp_path: Path) -> None:
    printed = _printed(_state(tmp_path), Selection(since=NOW - 7200 + 59))  # from 10:00:59
    assert [line.split()[2] for line in printed] == ["copy-worker", "reconciler"]


def test_local_logs_as_json_are_the_records_only(tmp_path: Path) -> None:
    printed = [json.loads(line) for line in _printed(_state(tmp_path), Selection(as_json=True), lines=2)]
    assert [(r.get("function_name"), r.get("message")) for r in printed] == [
        ("kie2s3-copy-worker", "file archived"),
        ("kie2s3-reconciler", "reconciled"),
    ]


def test_local_logs_without_options_are_one_readable_line_a_record_without_the_emulators_polling(
    tmp_path: Path,
) -> None:
    assert _printed(_state(tmp_path), Selection()) == [
        "[local stack] 09:00:00 listening",
        "2026-12-07 09:59:00 api          INFO    callback accepted family=market",
        "2026-12-07 09:59:00 api          ACCESS  method=POST path=/callbacks/kie status=200",
        "2026-12-07 09:59:01 copy-worker  INFO    download link resolved",
        "WARNING: a moto warning",
        "2026-12-07 10:01:00 copy-worker  INFO    file archived key=kie/t/00.png",
        "2026-12-07 10:02:00 reconciler   INFO    reconciled",
    ]


def test_readable_line_shows_the_task_and_the_exception_not_powertools_own_fields() -> None:
    record = _record(
        "copy-worker",
        "copy failed",
        "10:00:00",
        correlation_id="t1",
        cold_start=True,
        sampling_rate=0.1,
        xray_trace_id="1-abc",
        reason="kie.ai answered 500",
        exception_name="UpstreamError",
        exception='Traceback (most recent call last):\n  File "x", line 1\nUpstreamError: kie.ai answered 500',
    )
    assert Selection().render(logs.parse_line(record)) == (
        "2026-12-07 10:00:00 copy-worker  INFO    copy failed task=t1 reason=kie.ai answered 500"
        " exception=UpstreamError: UpstreamError: kie.ai answered 500"
    )


def test_the_last_stacks_logs_survive_make_down(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from devstack import up

    directory = _state(tmp_path / "up")
    assert up.down(directory) == 0  # a stack that failed to start: its logs, no state
    assert not directory.exists()
    assert "make logs LAST=1" in capsys.readouterr().out
    assert logs.main(["--last", "--state-dir", str(directory), "--function", "reconciler"]) == 0
    assert capsys.readouterr().out == "2026-12-07 10:02:00 reconciler   INFO    reconciled\n"


def test_make_logs_last_passes_last() -> None:
    [line] = [line for line in make_dry_run("logs", "LAST=1", env={"LINES": ""}) if "devstack.logs" in line]
    assert line.endswith('-m devstack.logs --lines "100" --last')


def test_make_logs_ignores_the_terminals_lines_variable() -> None:
    # A terminal (or a test runner) exports LINES, its height: only LINES= on make's command line counts.
    [line] = [line for line in make_dry_run("logs", env={"LINES": "24"}) if "devstack.logs" in line]
    assert line.endswith('--lines "100"')
    [line] = [
        line for line in make_dry_run("logs", "LINES=7", env={"LINES": "24"}) if "devstack.logs" in line
    ]
    assert line.endswith('--lines "7"')


def test_local_logs_of_a_function_that_logged_nothing_say_which_did(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _printed(_state(tmp_path), Selection(function="forward")) == []
    assert capsys.readouterr().err == (
        "no lines of function forward (functions in these logs: api, copy-worker, reconciler)\n"
    )


def test_deployed_log_groups_are_the_functions_logging_config_groups() -> None:
    resources = [
        {"LogicalResourceId": "ApiFunction", "PhysicalResourceId": "kie2s3-ApiFunction-1"},
        {"LogicalResourceId": "ApiFunctionLogGroup", "PhysicalResourceId": "kie2s3-ApiFunctionLogGroup-A"},
        {"LogicalResourceId": "CopyWorkerFunction", "PhysicalResourceId": "kie2s3-CopyWorkerFunction-2"},
        {
            "LogicalResourceId": "CopyWorkerFunctionLogGroup",
            "PhysicalResourceId": "kie2s3-CopyWorkerLogGroup-B",
        },
    ]
    # ForwardFunction is not in the stack (forwarding off): not listed.
    assert deployed_log_groups(load_template(), resources) == {
        "api": "kie2s3-ApiFunctionLogGroup-A",
        "copy-worker": "kie2s3-CopyWorkerLogGroup-B",
    }


def test_selection_keeps_only_records_of_its_function_since_its_time() -> None:
    line = Line("{}", {}, NOW, "api")
    assert Selection(function="api", since=NOW).keeps(line)
    assert not Selection(function="events").keeps(line)
    assert not Selection(since=NOW + 1).keeps(line)
    assert not Selection(as_json=True).keeps(Line("plain text", None, NOW, "api"))


def test_make_logs_of_a_deployed_stack_passes_every_option() -> None:
    [line] = [
        line
        for line in make_dry_run(
            "logs",
            "STACK_NAME=kie2s3",
            "REGION=eu-west-1",
            "FUNCTION=copy-worker",
            "SINCE=1h",
            "FOLLOW=1",
            "JSON=1",
        )
        if "devstack.logs" in line
    ]
    assert ".venv/bin/python -m devstack.logs" in line
    assert line.endswith(
        '--lines "100" --function "copy-worker" --since "1h" --follow --json --stack-name "kie2s3" --region "eu-west-1"'
    )


def test_make_logs_of_the_local_stack_needs_no_venv() -> None:
    [line] = [line for line in make_dry_run("logs", "FUNCTION=api", "LINES=5") if "devstack.logs" in line]
    assert ".venv" not in line
    assert line.endswith('-m devstack.logs --lines "5" --function "api"')


def test_deployed_logs_ask_aws_in_the_region_given(monkeypatch: pytest.MonkeyPatch) -> None:
    from devstack import cli

    asked: dict[str, object] = {}

    def session(purpose: str, **options: object) -> object:
        asked.update(options, purpose=purpose)
        raise UserError("stop here")

    monkeypatch.setattr(cli, "aws_session", session)
    with pytest.raises(UserError, match="stop here"):
        logs.main(["--stack-name", "kie2s3", "--region", "eu-west-1", "--function", "api"])
    assert asked == {"purpose": "make logs STACK_NAME=kie2s3", "region": "eu-west-1"}


def test_local_clock_only_line_takes_the_date_of_its_log_not_the_day_it_is_read() -> None:
    texts = ["[local stack] 23:59:00 listening", _record("api", "callback accepted", "23:59:30")]
    first, second = logs.local_lines(texts, datetime.date(2026, 12, 8))  # read after midnight
    assert first.time == datetime.datetime(2026, 12, 7, 23, 59).timestamp()
    assert first.time is not None
    assert second.time is not None
    assert first.time < second.time
