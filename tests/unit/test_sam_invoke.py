"""`make sam-event`: the event and env-vars files `sam local invoke` takes, checked without Docker —
the callback's signature verifies with the handler's own verifier, and the function is given every
variable the template gives it."""

import json
import time
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from devstack import sam_invoke
from devstack.running import StackState, read_state, write_state
from devstack.sam_invoke import deployed_target, ready_event, write_files
from devstack.template import load_template
from tests.local_state import running, state_data, supervisor
from tests.unit.test_deploy_commands import make_dry_run

from kie2s3.families import task_id_of
from kie2s3.signature import verify_signature

__all__ = ["running", "supervisor"]  # the fixtures

ROOT = Path(__file__).resolve().parents[2]
CALLBACK = "callback-market-success.json"
FORWARD_JOB = "sqs-forward-job.json"
DEPLOYED_KEY = "deployed-webhook-hmac-key"


@cache
def declared(function: str) -> frozenset[str]:
    """The variables template.yaml gives a function, read from the file itself."""
    template = load_template()
    names = set(template["Globals"]["Function"]["Environment"]["Variables"])
    own = template["Resources"][function]["Properties"].get("Environment") or {}
    return frozenset(names | set(own.get("Variables") or {}))


def every_variable(**values: str) -> dict[str, str]:
    """A function environment holding each variable any function is given, with these values."""
    names = set().union(*(declared(f) for f in ("ApiFunction", "CopyWorkerFunction", "ForwardFunction")))
    return {**{name: f"value-of-{name}" for name in names}, "WEBHOOK_TOLERANCE_SECONDS": "300", **values}


def _event(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "events" / name).read_text())


def _verifies(event: dict[str, Any], key: str) -> None:
    body = json.loads(event["body"])
    headers = event["headers"]
    verify_signature(
        key=key,
        task_id=task_id_of(body),
        timestamp=headers["x-webhook-timestamp"],
        signature=headers["x-webhook-signature"],
        now=time.time(),
        tolerance=300,
    )


@pytest.fixture
def local_stack(running: StackState) -> StackState:
    """The running stack, with forwarding on and the full function environment."""
    env = every_variable(
        COPY_QUEUE_URL="http://127.0.0.1:5000/123456789012/kie2s3-local-copyqueue",
        FORWARD_QUEUE_URL="http://127.0.0.1:5000/123456789012/kie2s3-local-forwardqueue",
        FORWARD_URL="http://127.0.0.1:3001/forward",
    )
    write_state(running.directory, {**state_data(running.pids["supervisor"]), "env": env})
    state = read_state(running.directory)
    assert state is not None
    return state


def test_sam_event_for_the_local_stack_is_signed_with_its_key_and_gives_every_variable(
    local_stack: StackState, tmp_path: Path
) -> None:
    out = tmp_path / "sam"
    argv = [f"events/{CALLBACK}", "--out", str(out), "--state-dir", str(local_stack.directory)]
    assert sam_invoke.main(argv) == 0
    event = json.loads((out / "event.json").read_text())
    _verifies(event, local_stack.hmac_key)
    assert json.loads(event["body"]) == json.loads(_event(CALLBACK)["body"])
    env = json.loads((out / "env.json").read_text())
    assert list(env) == ["ApiFunction"]
    assert set(env["ApiFunction"]) == declared("ApiFunction")
    assert env["ApiFunction"]["TASKS_TABLE"] == local_stack.env["TASKS_TABLE"]


def test_sam_event_for_a_forward_job_goes_to_the_forwarder_from_its_queue(
    local_stack: StackState, tmp_path: Path
) -> None:
    out = tmp_path / "sam"
    argv = [f"events/{FORWARD_JOB}", "--out", str(out), "--state-dir", str(local_stack.directory)]
    assert sam_invoke.main(argv) == 0
    env = json.loads((out / "env.json").read_text())
    assert set(env["ForwardFunction"]) == declared("ForwardFunction")
    event = json.loads((out / "event.json").read_text())
    assert event["Records"][0]["eventSourceARN"].endswith(":123456789012:kie2s3-local-forwardqueue")


def test_sam_event_for_the_local_stack_says_sam_local_invoke_cannot_reach_it(
    running: StackState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The local stack's functions reach its AWS emulator through boto3's AWS_ENDPOINT_URL, which the
    template does not declare (a deployed function has no use for it), and SAM passes no variable the
    template does not declare: the files are written, and the limit said, not papered over."""
    aws = {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "AWS_ACCESS_KEY_ID": "testing"}
    write_state(running.directory, {**state_data(running.pids["supervisor"]), "env": every_variable(**aws)})
    out = tmp_path / "sam"
    argv = [f"events/{CALLBACK}", "--out", str(out), "--state-dir", str(running.directory)]
    assert sam_invoke.main(argv) == 0
    assert "AWS_ENDPOINT_URL" not in declared("ApiFunction")
    assert "AWS_ENDPOINT_URL" not in json.loads((out / "env.json").read_text())["ApiFunction"]
    note = capsys.readouterr().out.splitlines()[-1]
    assert note.startswith("  note: SAM gives the function only the variables the template declares")
    assert "AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID" in note
    assert note.endswith(f"make invoke EVENT=events/{CALLBACK}")


def test_sam_event_for_a_stack_with_only_declared_variables_adds_no_note(
    local_stack: StackState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [f"events/{CALLBACK}", "--out", str(tmp_path), "--state-dir", str(local_stack.directory)]
    assert sam_invoke.main(argv) == 0
    assert "note:" not in capsys.readouterr().out


class FakeAws:
    """CloudFormation, Lambda and Secrets Manager of a deployed stack, as far as sam-event reads them."""

    def __init__(self) -> None:
        self.env = every_variable(
            COPY_QUEUE_URL="https://sqs.eu-west-1.amazonaws.com/111122223333/kie2s3-CopyQueue-AbC",
            FORWARD_QUEUE_URL="https://sqs.eu-west-1.amazonaws.com/111122223333/kie2s3-ForwardQueue-XyZ",
            FORWARD_URL="https://hooks.example.com/kie",
            KIE_WEBHOOK_HMAC_SECRET="kie2s3/webhook-hmac-key",
        )
        self.asked: list[str] = []

    def describe_stack_resources(self, StackName: str) -> dict[str, Any]:
        functions = ("ApiFunction", "CopyWorkerFunction", "ForwardFunction")
        return {"StackResources": [{"LogicalResourceId": f, "PhysicalResourceId": f"kie2s3-{f}-1"} for f in functions]}  # fmt: skip

    def get_function_configuration(self, FunctionName: str) -> dict[str, Any]:
        self.asked.append(FunctionName)
        return {"Environment": {"Variables": self.env}}

    def get_secret_value(self, SecretId: str) -> dict[str, Any]:
        assert SecretId == "kie2s3/webhook-hmac-key"
        return {"SecretString": DEPLOYED_KEY}


@pytest.mark.parametrize(("name", "function"), [(CALLBACK, "ApiFunction"), (FORWARD_JOB, "ForwardFunction")])
def test_sam_event_for_a_deployed_stack_uses_its_functions_environment_and_key(
    name: str, function: str, tmp_path: Path
) -> None:
    aws, template = FakeAws(), load_template()
    target = deployed_target(aws, aws, aws, "kie2s3", template, _event(name))
    assert (target.function, aws.asked[-1]) == (function, f"kie2s3-{function}-1")
    event_file, env_file = write_files(ready_event(_event(name), name, target, template), target, tmp_path)
    event = json.loads(event_file.read_text())
    if name == CALLBACK:
        _verifies(event, DEPLOYED_KEY)
    else:
        arn = "arn:aws:sqs:eu-west-1:111122223333:kie2s3-ForwardQueue-XyZ"
        assert event["Records"][0]["eventSourceARN"] == arn
    assert set(json.loads(env_file.read_text())[function]) >= declared(function)


def test_make_sam_event_passes_the_stack_and_region() -> None:
    [line] = [
        line
        for line in make_dry_run(
            "sam-event", f"EVENT=events/{CALLBACK}", "STACK_NAME=kie2s3", "REGION=eu-west-1"
        )
        if "devstack.sam_invoke" in line
    ]
    assert line.endswith(
        f'-m devstack.sam_invoke "events/{CALLBACK}" --stack-name "kie2s3" --region "eu-west-1"'
    )
