"""The soak's AWS faults: botocore answers with each service's real error shape, from the seed."""

import os
import signal

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError
from devstack.soak import aws_faults
from devstack.soak.aws_faults import AwsFaults, from_spec, kill_from_spec


def _client(service: str, faults: AwsFaults) -> object:
    client = boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url="http://127.0.0.1:9",  # never reached: every request is answered by the fault
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )
    client.meta.events.register("before-send", faults.before_send)
    return client


@pytest.mark.parametrize(
    ("service", "call", "codes"),
    [
        (
            "s3",
            lambda c: c.get_object(Bucket="bucket-x", Key="k"),
            {"SlowDown", "InternalError", "ServiceUnavailable"},
        ),
        (
            "dynamodb",
            lambda c: c.get_item(TableName="t", Key={"pk": {"S": "x"}}),
            {"ThrottlingException", "InternalServerError"},
        ),
        ("secretsmanager", lambda c: c.get_secret_value(SecretId="s"), {"ThrottlingException"}),
        (
            "events",
            lambda c: c.list_rules(),
            {"InternalException"},
        ),
    ],
)
def test_every_request_at_rate_one_fails_with_its_services_error(
    service: str, call: object, codes: set[str]
) -> None:
    faults = AwsFaults(seed=7, rate=1.0, name="worker0")
    with pytest.raises(ClientError) as raised:
        call(_client(service, faults))  # type: ignore[operator]
    assert raised.value.response["Error"]["Code"] in codes
    assert {kind.rsplit(" ", 1)[-1] for kind in faults.injected} <= codes  # botocore's retries too


def test_the_same_seed_and_name_draw_the_same_plan() -> None:
    class Request:
        url = "http://127.0.0.1:9/bucket-x/k"

    def plan(name: str) -> list[bool]:
        faults = AwsFaults(seed=3, rate=0.3, name=name)
        return [faults.before_send(Request(), "before-send.s3.GetObject") is not None for _ in range(40)]

    assert plan("worker1") == plan("worker1")
    assert plan("worker1") != plan("worker2")
    assert 0 < sum(plan("worker1")) < 40


class _Request:
    url = "http://127.0.0.1:9/bucket-x/k"


def test_a_scoped_plan_fails_only_the_functions_requests_and_names_their_services() -> None:
    faults = AwsFaults(seed=3, rate=1.0, name="function", scoped=True)
    assert faults.before_send(_Request(), "before-send.s3.GetObject") is None  # the soak's own request
    faults.scope.active = True
    assert faults.before_send(_Request(), "before-send.dynamodb.GetItem") is not None
    assert faults.scope.failed == {"dynamodb"}


def test_an_outage_fails_every_request_to_its_service_and_only_those() -> None:
    faults = AwsFaults(seed=3, rate=0.0, name="outage1", down=frozenset({"dynamodb"}))
    assert all(faults.before_send(_Request(), "before-send.dynamodb.GetItem") for _ in range(20))
    assert not any(faults.before_send(_Request(), "before-send.s3.PutObject") for _ in range(20))


def test_the_environment_names_the_outage() -> None:
    faults = from_spec("5,0.0,outage2,dynamodb+s3")
    assert faults.before_send(_Request(), "before-send.s3.PutObject") is not None
    assert faults.before_send(_Request(), "before-send.sqs.SendMessage") is None


class _Session:
    """Stands in for botocore's HTTP session: what the fault sent on the client's behalf, each
    answered with `status` (200: applied; 400: a cancelled transaction, nothing written)."""

    def __init__(self, status: int = 200) -> None:
        self.sent: list[str] = []
        self.status_code = status

    def send(self, request: object) -> "_Session":
        self.sent.append(str(getattr(request, "url", "")))
        return self


def test_an_answer_lost_is_applied_then_a_connection_error_botocore_retries() -> None:
    faults = AwsFaults(seed=11, rate=1.0, name="worker0")
    session = faults._session = _Session()
    client = _client("dynamodb", faults)
    lost = 0
    for _ in range(20):
        try:
            client.update_item(TableName="t", Key={"pk": {"S": "x"}})  # type: ignore[attr-defined]
        except ConnectionClosedError:
            lost += 1
        except ClientError:
            pass
    kinds = {kind.split(" ", 2)[2] for kind in faults.injected}
    assert "applied, answer lost" in kinds
    assert kinds - {"applied, answer lost"} <= {"ThrottlingException", "InternalServerError"}
    assert len(session.sent) == faults.injected["dynamodb UpdateItem applied, answer lost"] > 0
    assert lost > 0


def test_the_mapping_loses_only_delete_message_answers() -> None:
    faults = AwsFaults(seed=11, rate=1.0, name="worker0").for_mapping()
    faults._session = _Session()
    sqs = _client("sqs", faults)
    with pytest.raises(ConnectionClosedError):
        sqs.delete_message(QueueUrl="http://127.0.0.1:9/123/q", ReceiptHandle="r")  # type: ignore[attr-defined]
    assert set(faults.injected) == {"sqs DeleteMessage applied, answer lost"}


def _retrying_dynamodb(faults: AwsFaults) -> object:
    client = boto3.client(  # its retry reaches the second attempt
        "dynamodb",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 2}),
    )
    client.meta.events.register("before-send", faults.before_send)
    return client


_PUT = {"Put": {"TableName": "t", "Item": {"pk": {"S": "x"}}}}


def test_a_lost_transaction_is_answered_as_dynamodb_answers_its_token_again() -> None:
    # DynamoDB applies a TransactWriteItems once per ClientRequestToken (botocore keeps the token
    # across a call's attempts); moto does not, so the fault layer answers the retry itself.
    faults = AwsFaults(seed=1, rate=1.0, name="worker0")
    session = faults._session = _Session()
    faults._draw = lambda service, operation: "lost"  # type: ignore[method-assign]
    client = _retrying_dynamodb(faults)
    answer = client.transact_write_items(TransactItems=[_PUT])  # type: ignore[attr-defined]
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert len(session.sent) == 1  # applied once


def test_a_cancelled_transaction_whose_answer_was_lost_is_sent_again() -> None:
    # A cancelled TransactWriteItems wrote nothing: DynamoDB evaluates its retry again (the soak,
    # seed 3: a copy opened after its task's takedown was told it had opened, and stored its object).
    faults = AwsFaults(seed=1, rate=1.0, name="worker0")
    session = faults._session = _Session(status=400)
    faults._draw = lambda service, operation: "lost"  # type: ignore[method-assign]
    with pytest.raises(ConnectionClosedError):  # each attempt sent, none answered as applied
        _retrying_dynamodb(faults).transact_write_items(TransactItems=[_PUT])  # type: ignore[attr-defined]
    assert len(session.sent) > 1  # the retry reached the service


def test_a_kill_fires_the_nth_time_its_point_is_reached_and_says_so(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    killed: list[tuple[int, int]] = []
    monkeypatch.setattr(aws_faults.os, "kill", lambda pid, sig: killed.append((pid, sig)))
    kill = kill_from_spec("after-upload,2", AwsFaults(seed=1, rate=0.0, name="worker0"))
    kill._reached(event_name="after-call.s3.UploadPart")  # not the point
    kill._reached(event_name="after-call.s3.CompleteMultipartUpload")
    assert killed == []
    kill._reached(event_name="after-call.s3.PutObject")
    assert killed == [(os.getpid(), signal.SIGKILL)]
    printed = capfd.readouterr().out.splitlines()
    assert printed[0] == "SOAK-KILL after-upload"
    assert printed[1].startswith("SOAK-FAULTS ")


def test_an_unknown_kill_point_is_refused() -> None:
    with pytest.raises(ValueError, match="mid-part"):
        kill_from_spec("mid-coffee,1")
