"""Every AWS call the functions made while the tests ran is allowed by the role that made it, and every
grant of every role is used (devstack.iam, over devstack.aws_calls' recording).

`make test` and `make integration` record the unit and integration sessions into KIE2S3_AWS_CALLS,
then run these tests on that recording.
"""

import copy
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from devstack.aws_calls import ENV_VARIABLE
from devstack.iam import Recording, Report, check, grants, roles
from devstack.template import Resolver
from tests.unit.test_template import sam_transform

# Values that, with the recorded stack's own, make every Condition of the template true once and
# false once: the grants that exist under each.
COMBINATIONS: list[dict[str, str]] = [
    {},
    {
        "KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000",
        "ExistingBucketName": "team-media",
        "ForwardUrl": "https://example.com/hook",
        "KieWebhookHmacSecretId": "none",
        "CallbackTokenSecretId": "",
        "AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:alarms",
        "ApiReservedConcurrency": "5",
    },
    {"ObjectLockRetentionDays": "1"},
]


@cache
def recording() -> Recording:
    directory = os.environ.get(ENV_VARIABLE)
    if not directory or not list(Path(directory).glob("*.jsonl")):
        pytest.fail(
            f"no recording of AWS calls: run the integration tests with {ENV_VARIABLE}=<dir> first (make integration)"
        )
    found = Recording.read(Path(directory))
    assert found.calls, f"{directory} holds no call"
    assert found.stacks, f"{directory} holds no provisioned stack"
    return found


def combinations() -> list[tuple[dict[str, str], dict[str, str]]]:
    """The session's stack's values with each COMBINATIONS' overrides."""
    stack = recording().stacks[0]
    return [({**stack["parameters"], **overrides}, stack["physical_ids"]) for overrides in COMBINATIONS]


@cache
def report() -> Report:
    return check(recording(), sam_transform(), combinations())


def test_every_call_is_allowed_by_its_functions_role() -> None:
    denied = report().denied
    assert not denied, "calls the deployed role would refuse:\n" + "\n".join(denied)


def test_every_grant_is_used_or_listed_with_its_reason() -> None:
    unused = report().unused
    assert not unused, (
        "grants no recorded call used (remove, or list in devstack.iam.UNUSED_GRANTS):\n" + "\n".join(unused)
    )


def test_the_combinations_toggle_every_condition() -> None:
    transformed = sam_transform()
    seen: dict[str, set[bool]] = {name: set() for name in transformed["Conditions"]}
    for parameters, physical_ids in combinations():
        resolver = Resolver(transformed, parameters, physical_ids)
        for name in seen:
            seen[name].add(resolver.condition(name))
    assert {name: values for name, values in seen.items() if values != {True, False}} == {}


def _without(transformed: dict[str, Any], function: str, statement: str, action: str) -> dict[str, Any]:
    """The transformed template with one action taken out of one statement of a function's role."""
    changed = copy.deepcopy(transformed)
    role = changed["Resources"][f"{function}Role"]["Properties"]
    for policy in role["Policies"]:
        for raw in policy["PolicyDocument"]["Statement"]:
            body = raw["Fn::If"][1] if "Fn::If" in raw else raw
            if body.get("Sid") == statement:
                actions = body["Action"] if isinstance(body["Action"], list) else [body["Action"]]
                body["Action"] = [a for a in actions if a != action] or ["none:None"]
    return changed


def test_removing_one_used_grant_per_function_fails_the_check_naming_it() -> None:
    transformed = sam_transform()
    used = report().used
    functions = sorted({function for function, *_ in used})
    assert len(functions) >= 4, functions
    for function in functions:
        inline = sorted((s, a) for f, s, a, _ in used if f == function and not s.startswith("AWS"))
        statement, action = inline[0]
        calls = [c for c in recording().calls if c["function"] == function]
        narrowed = Recording(recording().stacks, recording().configs, calls)
        lines = check(narrowed, _without(transformed, function, statement, action), [], {}).denied
        assert lines, f"removing {action} from {function}'s {statement} went unnoticed"
        assert all(line.startswith(f"{function} ") and f"needs {action} " in line for line in lines), lines
        assert all("\n" not in line for line in lines)


def test_each_function_role_in_the_recording_has_grants() -> None:
    stack = recording().stacks[0]
    found = roles(sam_transform(), stack["parameters"], stack["physical_ids"])
    assert {name: len(list(grants(role))) > 0 for name, role in found.items()} == dict.fromkeys(found, True)
