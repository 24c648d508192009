"""The complexity gate (devstack/complexity.py) on radon's JSON report."""

import io
import json

import pytest
from devstack.complexity import findings, main


def _function(name: str, complexity: int, **extra: object) -> dict[str, object]:
    return {"type": "function", "name": name, "complexity": complexity, "lineno": 7, "closures": [], **extra}


def test_findings_name_each_function_above_its_trees_limit() -> None:
    report = {
        "src/a.py": [_function("fine", 12), _function("busy", 13)],
        "devstack/b.py": [
            _function("tool", 15),
            {**_function("handle", 16, classname="Server"), "type": "method"},
        ],
    }

    assert findings(report, {"src": 12, "devstack": 15}) == [
        "devstack/b.py:7 Server.handle 16 > 15",
        "src/a.py:7 busy 13 > 12",
    ]


def test_findings_count_closures_but_not_classes() -> None:
    outer = _function("outer", 2, closures=[_function("inner", 20)])
    report = {"src/a.py": [{"type": "class", "name": "Big", "complexity": 40, "methods": []}, outer]}

    assert findings(report, {"src": 12}) == ["src/a.py:7 inner 20 > 12"]


def test_findings_refuse_files_under_no_limit_or_unreadable() -> None:
    report = {"elsewhere/c.py": [], "src/d.py": {"error": "invalid syntax"}}

    assert findings(report, {"src": 12}) == [
        "elsewhere/c.py: under no limit (give its tree one)",
        "src/d.py: radon could not read it: invalid syntax",
    ]


def test_main_exits_non_zero_on_a_finding(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"src/a.py": [_function("busy", 13)]})))

    assert main(["src=12"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "src/a.py:7 busy 13 > 12",
        "complexity: 1 function(s) above the limit",
    ]


def test_main_refuses_a_malformed_limit() -> None:
    with pytest.raises(SystemExit):
        main(["src"])
