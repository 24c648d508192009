"""`make audit`'s verdict on pip-audit's report: vulnerabilities fail; unaudited packages fail when strict."""

import json
from pathlib import Path
from typing import Any

import pytest
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
