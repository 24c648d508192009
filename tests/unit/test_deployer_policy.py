"""docs/deployer-policy.json grants what deploying the template takes, checked against what it creates.

The actions each resource type needs are CloudFormation's own: the `handlers` permissions (create,
read, update, delete) of the resource type's schema in the CloudFormation registry, as cfn-lint ships
it. The types are those of the template after SAM's transform, so a resource added to template.yaml
is checked here without this test changing.
"""

import fnmatch
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
from devstack.template import REPO_ROOT
from tests.unit.test_template import sam_transform

POLICY_PATH = REPO_ROOT / "docs" / "deployer-policy.json"
MANAGED_POLICY_MAX_CHARACTERS = 6_144  # IAM quotas: a managed policy, whitespace not counted
HANDLERS = ("create", "read", "update", "delete")
STACK = "arn:aws:cloudformation:eu-west-1:111122223333:stack/kie2s3/0b1c2d3e"
# Services the policy names beyond the template's types: the stack itself, and the preflight's reads.
OTHER_SERVICES = {"cloudformation", "secretsmanager", "kms"}


def _policy() -> dict[str, Any]:
    policy: dict[str, Any] = json.loads(POLICY_PATH.read_text())
    return policy


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _allows(policy: dict[str, Any], action: str, resource: str | None = None) -> bool:
    """Whether an Allow statement covers the action (IAM's case-insensitive wildcards), on `resource`
    when given; statements with a Condition count only when no resource is asked about."""
    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        if not any(fnmatch.fnmatch(action.lower(), a.lower()) for a in _listed(statement["Action"])):
            continue
        if resource is None or any(fnmatch.fnmatchcase(resource, r) for r in _listed(statement["Resource"])):
            return True
    return False


def _own_service(handlers: dict[str, Any]) -> str:
    """The IAM service a resource type belongs to: the prefix of most of its create permissions."""
    prefixes = Counter(p.split(":")[0].lower() for p in handlers["create"]["permissions"])
    return prefixes.most_common(1)[0][0]


def _required() -> Iterator[tuple[str, str]]:
    """(resource type, action): every handler permission of each type's own service."""
    types = sorted({r["Type"] for r in sam_transform()["Resources"].values()})
    for kind in types:
        handlers = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", kind).schema["handlers"]
        service = _own_service(handlers)
        for handler in HANDLERS:
            for action in handlers.get(handler, {}).get("permissions", []):
                if action.split(":")[0].lower() == service:
                    yield kind, action


def test_deployer_policy_grants_every_action_cloudformation_takes_for_the_templates_resources() -> None:
    policy = _policy()
    missing = sorted({f"{kind}: {action}" for kind, action in _required() if not _allows(policy, action)})
    assert missing == []


def test_deployer_policy_names_only_the_services_the_template_uses() -> None:
    services = {action.split(":")[0].lower() for _, action in _required()} | {"iam"} | OTHER_SERVICES
    named = {
        action.split(":")[0]
        for statement in _policy()["Statement"]
        for action in _listed(statement["Action"])
    }
    assert named <= services


@pytest.mark.parametrize(
    "action",
    [
        "CreateChangeSet",
        "ExecuteChangeSet",
        "DescribeChangeSet",
        "DescribeStacks",
        "DescribeStackEvents",
        "DeleteStack",
    ],
)
def test_deployer_policy_deploys_and_deletes_the_stack(action: str) -> None:
    assert _allows(_policy(), f"cloudformation:{action}", STACK)


def test_deployer_policy_lets_the_sam_transform_run() -> None:
    transform = "arn:aws:cloudformation:eu-west-1:aws:transform/Serverless-2016-10-31"
    assert _allows(_policy(), "cloudformation:CreateChangeSet", transform)


def test_deployer_policy_manages_only_roles_named_after_the_stack() -> None:
    policy = _policy()
    assert _allows(policy, "iam:CreateRole", "arn:aws:iam::111122223333:role/kie2s3-ApiFunctionRole-1A2B")
    assert not _allows(policy, "iam:CreateRole", "arn:aws:iam::111122223333:role/Admin")
    [passing] = [s for s in policy["Statement"] if "iam:PassRole" in _listed(s["Action"])]
    assert passing["Resource"] == "arn:aws:iam::*:role/kie2s3*"
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": ["lambda.amazonaws.com", "scheduler.amazonaws.com"]}
    }


def test_deployer_policy_writes_only_buckets_named_after_the_stack_or_sams_own() -> None:
    policy = _policy()
    assert _allows(policy, "s3:PutBucketPolicy", "arn:aws:s3:::kie2s3-archivebucket-1a2b3c")
    assert _allows(
        policy, "s3:PutObject", "arn:aws:s3:::aws-sam-cli-managed-default-samclisourcebucket-x/kie2s3/a"
    )
    assert not _allows(policy, "s3:PutBucketPolicy", "arn:aws:s3:::someone-elses-bucket")
    assert not _allows(policy, "s3:PutObject", "arn:aws:s3:::someone-elses-bucket/key")


def test_deployer_policy_fits_a_managed_policy() -> None:
    assert len("".join(POLICY_PATH.read_text().split())) <= MANAGED_POLICY_MAX_CHARACTERS
