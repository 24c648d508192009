"""`make audit`'s verdict on pip-audit's report: vulnerabilities fail; unaudited packages fail when strict."""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from devstack import audit as audit_module
from devstack.audit import summarise

CLEAN = {"name": "boto3", "version": "1.44.5", "vulns": []}
VULNERABLE = {"name": "urllib3", "version": "1.0", "vulns": [{"id": "GHSA-xxxx", "fix_versions": ["2.5"]}]}
SKIPPED = {"name": "pydantic", "version": "2.14.3", "skip_reason": "Dependency not found on PyPI"}


def _report(tmp_path: Path, *dependencies: dict[str, Any]) -> Path:
    path = tmp_path / "audit.json"
    path.write_text(json.dumps({"dependencies": list(dependencies), "fixes": []}))
    return path


@pytest.mark.parametrize("strict", [False, True])
def test_audit_clean_report_passes(tmp_path: Path, strict: bool) -> None:
    assert summarise(_report(tmp_path, CLEAN), strict=strict) == 0


@pytest.mark.parametrize("strict", [False, True])
def test_audit_vulnerability_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str], strict: bool) -> None:
    assert summarise(_report(tmp_path, CLEAN, VULNERABLE), strict=strict) == 1
    assert "VULNERABLE urllib3 1.0: GHSA-xxxx" in capsys.readouterr().out


def test_audit_unaudited_packages_warn_then_fail_when_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _report(tmp_path, CLEAN, SKIPPED)
    assert summarise(report, strict=False) == 0
    assert "could NOT audit 1 packages" in capsys.readouterr().err
    assert summarise(report, strict=True) == 1


def _pip_audit_answering(report: dict[str, Any] | None, stderr: str) -> Any:
    """A stand-in for pip-audit's process: writes `report` (unless None) where --output says, says `stderr`."""

    def fake_run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        if report is not None:
            Path(command[command.index("--output") + 1]).write_text(json.dumps(report))
        return subprocess.CompletedProcess(command, 0 if report is not None else 1, stderr=stderr)

    return fake_run


def test_audit_that_audited_nothing_says_so_never_no_known_vulnerabilities(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = {"dependencies": [SKIPPED, {**SKIPPED, "name": "boto3"}], "fixes": []}
    monkeypatch.setattr(audit_module, "export_requirements", lambda uv, into: None)
    monkeypatch.setattr(
        audit_module.subprocess, "run", _pip_audit_answering(report, "No known vulnerabilities found\n")
    )
    assert audit_module.main([]) == 0
    said = capsys.readouterr()
    assert "No known vulnerabilities found" not in said.out + said.err
    assert said.err.startswith("pip-audit audited NOTHING: the vulnerability database")
    assert "none of the 2 locked packages" in said.err
    assert audit_module.main(["--strict"]) == 1


def test_audit_when_the_database_is_unreachable_says_nothing_was_audited(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    said = "Could not connect to PyPI's vulnerability feed\nTip: your network may be blocking this service.\n"
    monkeypatch.setattr(audit_module, "export_requirements", lambda uv, into: None)
    monkeypatch.setattr(audit_module.subprocess, "run", _pip_audit_answering(None, said))
    assert audit_module.main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pip-audit audited NOTHING (the vulnerability database was unreachable")
    assert "Could not connect to PyPI's vulnerability feed" in err
