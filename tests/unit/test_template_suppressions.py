"""Every finding of the template's rule sets that kie2s3 does not follow is suppressed in place, with
its reason (make lint runs cfn-lint with the serverless rules, and checkov)."""

import re
from pathlib import Path

import pytest
from devstack.template import TEMPLATE_PATH, load_template


def checkov_skips(template: dict) -> list[tuple[str, str, str]]:
    """(resource, check id, reason) of each checkov skip in the resources' Metadata."""
    return [
        (name, str(skip.get("id", "")), str(skip.get("comment", "")).strip())
        for name, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]


def cfn_lint_ignores_without_reason(text: str) -> list[str]:
    """The lines that ignore cfn-lint rules without a `# reason` on the line."""
    return [
        line.strip()
        for line in text.splitlines()
        if "ignore_checks:" in line and not re.search(r"\]\s*#\s*\S", line)
    ]


def test_template_suppressions_each_have_a_reason() -> None:
    skips = checkov_skips(load_template())

    assert skips, "the template suppresses no checkov finding: is the Metadata still read?"
    assert [s for s in skips if not re.fullmatch(r"CKV_AWS_\d+", s[1]) or len(s[2]) < 20] == []
    assert cfn_lint_ignores_without_reason(TEMPLATE_PATH.read_text()) == []


def test_template_suppressions_check_finds_a_bare_one(tmp_path: Path) -> None:
    bare = tmp_path / "template.yaml"
    bare.write_text(
        "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n    Metadata:\n"
        "      checkov:\n        skip:\n          - id: CKV_AWS_27\n"
        "      cfn-lint:\n        config:\n          ignore_checks: [ES6000]\n"
    )

    assert checkov_skips(load_template(bare)) == [("Queue", "CKV_AWS_27", "")]
    assert cfn_lint_ignores_without_reason(bare.read_text()) == ["ignore_checks: [ES6000]"]


@pytest.mark.parametrize("resource", ["ApiFunction", "CopyWorkerFunction", "ArchiveBucket", "CopyQueue"])
def test_template_suppressions_reach_the_resources_they_name(resource: str) -> None:
    assert resource in {name for name, _, _ in checkov_skips(load_template())}
