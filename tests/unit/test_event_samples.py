"""Every sample in events/ is an event the function takes, whole (the check `make invoke` makes
before anything starts), and each kind of sample does what it is there to show."""

import json
from pathlib import Path
from typing import Any

import pytest
from devstack.callbacks import market_body
from devstack.cli import UserError
from devstack.invoke import check_event, prepare, sqs_function_for
from devstack.template import load_template
from pydantic import TypeAdapter
from tests.fakes import make_fakes

from kie2s3.logic.copies import request_bulk_copies, request_copies
from kie2s3.logic.plan import raw_callbacks_prefix
from kie2s3.models import BulkCopyRequest, CopiesBody, CopyJob, CopyRequest, ForwardJob

EVENTS = Path(__file__).resolve().parents[2] / "events"
SAMPLES = sorted(EVENTS.glob("*.json"))
# The kind each sample's name says it is.
KINDS = {"callback": "http", "get": "http", "copies": "http", "sqs": "sqs", "dynamodb": "dynamodb", "scheduled": "schedule"}  # fmt: skip
MARKET_RECORD_INFO = "/api/v1/jobs/recordInfo"
# The local stack's function environment names its queues (devstack.aws: <stack>-<logical id>).
LOCAL_QUEUES = {
    "COPY_QUEUE_URL": "http://127.0.0.1:5000/123456789012/kie2s3-local-copyqueue",
    "FORWARD_QUEUE_URL": "http://127.0.0.1:5000/123456789012/kie2s3-local-forwardqueue",
}


def _event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def _body(name: str) -> Any:
    return json.loads(_event(name)["body"])


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_every_sample_is_a_whole_event_of_its_kind(path: Path) -> None:
    event = json.loads(path.read_text())
    assert check_event(event, path.name) == KINDS[path.name.split("-", 1)[0]]


def test_the_samples_cover_copies_in_each_form_a_forward_job_and_a_ledger_stream_record() -> None:
    names = {path.name for path in SAMPLES}
    assert {"copies-by-urls.json", "copies-by-task-id.json", "copies-bulk.json"} <= names
    assert {"sqs-copy-job.json", "sqs-forward-job.json", "dynamodb-file-copied.json"} <= names


@pytest.mark.parametrize(
    ("name", "form"),
    [
        ("copies-by-urls.json", CopyRequest),
        ("copies-by-task-id.json", CopyRequest),
        ("copies-bulk.json", BulkCopyRequest),
    ],
)
def test_copies_samples_are_bodies_of_their_form(name: str, form: type) -> None:
    assert type(TypeAdapter(CopiesBody).validate_python(_body(name))) is form
    assert _event(name)["routeKey"] == "POST /copies"


def test_copies_by_urls_sample_plans_a_copy_of_each_url() -> None:
    body = _body("copies-by-urls.json")
    document = request_copies(make_fakes().services, CopyRequest.model_validate(body))
    assert [f.source for f in document.files] == body["urls"]
    assert {f.state for f in document.files} == {"pending"}


def test_copies_by_task_id_and_bulk_samples_record_what_record_info_lists() -> None:
    fakes = make_fakes()
    one, bulk = _body("copies-by-task-id.json"), _body("copies-bulk.json")
    for task_id in bulk["taskIds"]:
        url = f"https://tempfile.aiquickdraw.com/p/{task_id}_0.png"
        fakes.kie.records[(MARKET_RECORD_INFO, task_id)] = market_body(task_id, [url])["data"]
    document = request_copies(fakes.services, CopyRequest.model_validate(one))
    assert (document.task_id, len(document.files)) == (one["taskId"], 1)
    answer = request_bulk_copies(fakes.services, BulkCopyRequest.model_validate(bulk))
    assert [t.task_id for t in answer.tasks] == bulk["taskIds"]
    assert (answer.unknown, answer.errors) == ([], [])


def test_queue_samples_carry_the_jobs_the_functions_read() -> None:
    copy = CopyJob.model_validate_json(_event("sqs-copy-job.json")["Records"][0]["body"])
    forward = ForwardJob.model_validate_json(_event("sqs-forward-job.json")["Records"][0]["body"])
    assert copy.task_id == forward.task_id
    assert forward.raw_key.startswith(raw_callbacks_prefix("kie/", forward.task_id))


@pytest.mark.parametrize(
    ("name", "function"),
    [("sqs-copy-job.json", "CopyWorkerFunction"), ("sqs-forward-job.json", "ForwardFunction")],
)
def test_queue_samples_go_to_the_function_of_their_queue(name: str, function: str) -> None:
    env = {**LOCAL_QUEUES, "FORWARD_URL": "http://127.0.0.1:3001/forward"}
    assert sqs_function_for(load_template(), _event(name), env)[0] == function


def test_a_forward_job_without_forwarding_says_how_to_turn_it_on() -> None:
    with pytest.raises(UserError) as raised:
        sqs_function_for(
            load_template(),
            _event("sqs-forward-job.json"),
            {"COPY_QUEUE_URL": LOCAL_QUEUES["COPY_QUEUE_URL"]},
        )
    assert str(raised.value) == (
        "its records come from queue kie2s3-local-forwardqueue; this stack's functions read"
        " kie2s3-local-copyqueue (a forward job needs forwarding on: make up FORWARD=1)"
    )


class RecordingEmulator:
    """The emulator's admin calls `prepare` makes, kept."""

    def __init__(self) -> None:
        self.served: list[str] = []
        self.tasks: dict[str, dict[str, Any]] = {}

    def serve(self, urls: Any) -> object:
        self.served.extend(urls)
        return None

    def add_task(self, family: str, task_id: str, data: Any) -> None:
        self.tasks[f"{family}/{task_id}"] = dict(data)


def test_invoke_serves_a_copies_samples_urls_and_makes_its_tasks_known() -> None:
    by_urls, bulk = RecordingEmulator(), RecordingEmulator()
    prepare(_event("copies-by-urls.json"), "copies-by-urls.json", by_urls, "key")
    assert by_urls.served == _body("copies-by-urls.json")["urls"]
    prepare(_event("copies-bulk.json"), "copies-bulk.json", bulk, "key")
    assert sorted(bulk.tasks) == sorted(f"market/{t}" for t in _body("copies-bulk.json")["taskIds"])
    assert all(data["state"] == "success" for data in bulk.tasks.values())
