"""The soak's AWS faults: botocore answers with each service's real error shape, from the seed."""

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from devstack.soak.aws_faults import AwsFaults, from_spec


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
            lambda c: c.put_events(Entries=[{"Source": "kie2s3", "DetailType": "x", "Detail": "{}"}]),
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
