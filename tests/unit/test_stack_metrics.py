"""Each stack its own metrics (issue 22, item 4): two stacks in one account never share a custom metric.

The template is resolved, after SAM's transform, for two stack names. Every alarm and dashboard
widget on a custom metric (a namespace not AWS's own) must read the metric its own stack's functions
emit, and the EMF lines the function prints with that stack's environment must carry exactly that
namespace and dimension.
"""

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from devstack.template import REPO_ROOT
from tests.unit.test_template_accounts import dashboard_metrics, deployed
from tests.unit.test_template_accounts import environment as deployed_environment

STACKS = ("kie2s3", "kie2s3-staging")
# Forwarding on: its alarm on ForwardFailures is the one alarm on a custom metric.
COMBINATION = "forwarding"
FUNCTIONS = ("ApiFunction", "CopyWorkerFunction", "ReconcilerFunction", "ForwardFunction", "EventsFunction")

# A metric as CloudWatch tells one from another: namespace, name, and its dimensions.
MetricId = tuple[str, str, frozenset[tuple[str, str]]]


def is_custom(namespace: str) -> bool:
    return not namespace.startswith("AWS/")


def powertools(stack: str, function: str = "ApiFunction") -> dict[str, str]:
    """The Powertools settings of a function of this stack, as deployed."""
    environment = deployed_environment(COMBINATION, function, stack_name=stack)
    return {name: value for name, value in environment.items() if name.startswith("POWERTOOLS_")}


def own_metric(stack: str, name: str) -> MetricId:
    """The metric `name` as this stack's functions emit it (Powertools: namespace, service dimension)."""
    settings = powertools(stack)
    return (
        settings["POWERTOOLS_METRICS_NAMESPACE"],
        name,
        frozenset({("service", settings["POWERTOOLS_SERVICE_NAME"])}),
    )


def custom_alarm_metrics(stack: str) -> dict[str, MetricId]:
    """Every alarm on a custom metric, by logical id, with the metric it reads."""
    found = {}
    for logical_id, resource in deployed(COMBINATION, stack).items():
        props = resource["Properties"]
        if resource["Type"] == "AWS::CloudWatch::Alarm" and is_custom(props["Namespace"]):
            dimensions = frozenset((d["Name"], d["Value"]) for d in props.get("Dimensions", []))
            found[logical_id] = (props["Namespace"], props["MetricName"], dimensions)
    return found


def custom_widget_metrics(stack: str) -> list[MetricId]:
    """Every metric line of the dashboard on a custom metric, with the metric it reads."""
    [board] = [r for r in deployed(COMBINATION, stack).values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    body = json.loads(board["Properties"]["DashboardBody"])
    found = []
    for line in dashboard_metrics(body):
        if is_custom(line[0]):
            pairs = line[2:]
            found.append((line[0], line[1], frozenset(zip(pairs[::2], pairs[1::2], strict=True))))
    return found


def test_every_function_of_a_stack_has_the_same_powertools_settings() -> None:
    for stack in STACKS:
        for function in FUNCTIONS:
            assert powertools(stack, function) == powertools(stack), (stack, function)


def test_two_stacks_emit_different_metrics() -> None:
    first, second = (own_metric(stack, "ForwardFailures") for stack in STACKS)
    assert first != second


@pytest.mark.parametrize("stack", STACKS)
def test_custom_metric_alarms_read_their_own_stacks_metric(stack: str) -> None:
    alarms = custom_alarm_metrics(stack)
    assert set(alarms) == {"ForwardFailuresAlarm"}
    for logical_id, metric in alarms.items():
        assert metric == own_metric(stack, metric[1]), logical_id


@pytest.mark.parametrize("stack", STACKS)
def test_custom_metric_widgets_read_their_own_stacks_metrics(stack: str) -> None:
    widgets = custom_widget_metrics(stack)
    assert len(widgets) >= 10
    for metric in widgets:
        assert metric == own_metric(stack, metric[1])


def test_no_alarm_or_widget_of_one_stack_reads_the_others_metrics() -> None:
    first, second = (
        set(custom_alarm_metrics(stack).values()) | set(custom_widget_metrics(stack)) for stack in STACKS
    )
    assert first
    assert not first & second


# One refused request through the real handler, in a process of its own: Powertools reads its
# namespace and service when kie2s3 is imported, as in a Lambda container. Its EMF lines go to stdout.
_REFUSED_REQUEST = """
import os, sys
from devstack.lambda_runtime import LambdaContext, http_event
import app

answer = app.lambda_handler(http_event("GET", "/tasks/not%20a%20task%20id"), LambdaContext(function_name="f"))
print(answer["statusCode"], file=sys.stderr)
"""


def emf_lines(environment: dict[str, str]) -> list[dict[str, Any]]:
    """The EMF documents the function prints for a refused request, with exactly this environment."""
    completed = subprocess.run(
        [sys.executable, "-c", _REFUSED_REQUEST],
        env={
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": f"{REPO_ROOT / 'src' / 'handler'}:{REPO_ROOT}",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # never reached: the request is refused first
            **environment,
        },
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr.strip().endswith("400"), completed.stderr
    documents = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    return [document for document in documents if "_aws" in document]


@pytest.mark.parametrize("stack", STACKS)
def test_emf_lines_carry_the_stacks_namespace_and_dimension(stack: str) -> None:
    [document] = emf_lines(deployed_environment(COMBINATION, stack_name=stack))
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [["service"]]
    emitted = {
        (directive["Namespace"], metric["Name"], frozenset({("service", document["service"])}))
        for metric in directive["Metrics"]
    }
    assert emitted == {own_metric(stack, "RequestsRefused")}
    # What the alarms and the dashboard read, for this stack and no other.
    assert own_metric(stack, "RequestsRefused") in custom_widget_metrics(stack)
    other = next(s for s in STACKS if s != stack)
    assert not emitted & set(custom_widget_metrics(other))
