"""KeyTemplate and the secrets' rotation window in template.yaml, after SAM's transform."""

from typing import Any

from devstack.template import Resolver, function_environment, load_template
from tests.unit.test_template import PHYSICAL_IDS, sam_transform

DATED = "{prefix}{yyyy}/{mm}/{dd}/{model}/{taskId}/{index}{ext}"
FUNCTIONS = ("ApiFunction", "CopyWorkerFunction", "ReconcilerFunction")
# Every non-default value these tests judge, in one SAM transform (each takes about a second).
CHANGED = {"KeyTemplate": DATED, "SecretRotationWindowSeconds": "3600", "ObjectLockRetentionDays": "30"}


def _deployed_environment(parameters: dict[str, str], *names: str) -> dict[str, dict[str, Any]]:
    """The named variables of each Lambda function as CloudFormation would set them with these values."""
    transformed = sam_transform(parameters)
    resolver = Resolver(transformed, parameters, PHYSICAL_IDS)
    variables = {f: transformed["Resources"][f]["Properties"]["Environment"]["Variables"] for f in FUNCTIONS}
    return {f: {n: resolver.resolve(variables[f][n]) for n in names} for f in FUNCTIONS}


def test_key_template_reaches_every_function() -> None:
    for name, env in _deployed_environment(CHANGED, "KEY_TEMPLATE").items():
        assert env["KEY_TEMPLATE"] == DATED, name
    for name, env in _deployed_environment({}, "KEY_TEMPLATE").items():
        assert env["KEY_TEMPLATE"] == "{prefix}{taskId}/{index}{ext}", name


def test_key_template_local_stack_resolves_it_like_sam_local() -> None:
    env = function_environment(load_template(), {"KeyTemplate": DATED}, PHYSICAL_IDS, "CopyWorkerFunction")
    assert env["KEY_TEMPLATE"] == DATED


def test_rotation_window_reaches_every_function() -> None:
    for name, env in _deployed_environment(CHANGED, "SECRET_ROTATION_WINDOW_SECONDS").items():
        assert env["SECRET_ROTATION_WINDOW_SECONDS"] == "3600", name
    parameter = load_template()["Parameters"]["SecretRotationWindowSeconds"]
    assert (parameter["Type"], parameter["Default"], parameter["MinValue"]) == ("Number", 86400, 0)


def test_no_function_may_delete_archived_objects() -> None:
    """Takedown runs with the operator's credentials (make takedown): the functions, whose API also
    serves the unauthenticated callback route, hold no delete or governance-bypass permission."""
    transformed = sam_transform(CHANGED)
    granted = {
        action
        for resource in transformed["Resources"].values()
        if resource["Type"] == "AWS::IAM::Role"
        for policy in resource["Properties"].get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
        for action in (
            [statement.get("Action", [])]
            if isinstance(statement.get("Action"), str)
            else statement.get("Action", [])
        )
    }
    assert not {a for a in granted if a.startswith("s3:Delete") or a == "s3:BypassGovernanceRetention"}
