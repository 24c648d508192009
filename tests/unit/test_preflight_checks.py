"""The preflight's checks where the emulator cannot play the part: what the caller may not read."""

import boto3
from botocore.stub import Stubber
from devstack import preflight


def secrets_client() -> object:
    return boto3.client(
        "secretsmanager", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def test_secret_the_caller_may_not_read_is_reported_not_checked() -> None:
    client = secrets_client()
    report = preflight.Report()
    with Stubber(client) as stub:
        stub.add_response(
            "describe_secret", {"Name": "kie2s3/kie-api-key"}, {"SecretId": "kie2s3/kie-api-key"}
        )
        stub.add_client_error("get_secret_value", "AccessDeniedException", http_status_code=400)
        preflight.check_secret(client, "KieApiKeySecretId", "kie2s3/kie-api-key", "eu-west-1", report)
        stub.assert_no_pending_responses()
    assert report.problems == []
    assert report.unchecked == [
        "secret kie2s3/kie-api-key (KieApiKeySecretId): its value (you may not read it)"
    ]


def test_secret_given_as_an_arn_is_a_problem() -> None:
    report = preflight.Report()
    arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:kie2s3/kie-api-key-AbCdEf"
    preflight.check_secret(secrets_client(), "KieApiKeySecretId", arn, "eu-west-1", report)
    [problem] = report.problems
    assert (
        problem.fix == "give the secret's name (KieApiKeySecretId=kie2s3/kie-api-key), created in eu-west-1"
    )


def test_secret_encrypted_with_a_key_the_functions_may_not_use() -> None:
    client = secrets_client()
    report = preflight.Report()
    key = "arn:aws:kms:eu-west-1:111122223333:key/1234"
    with Stubber(client) as stub:
        stub.add_response("describe_secret", {"Name": "s", "KmsKeyId": key}, {"SecretId": "s"})
        stub.add_response("get_secret_value", {"Name": "s", "SecretString": "plain"}, {"SecretId": "s"})
        preflight.check_secret(client, "KieApiKeySecretId", "s", "eu-west-1", report)
    assert [str(problem) for problem in report.problems] == [
        f"problem: secret s (KieApiKeySecretId) is encrypted with KMS key {key}, which the functions may not "
        "use; fix: aws secretsmanager update-secret --region eu-west-1 --secret-id s --kms-key-id "
        "alias/aws/secretsmanager"
    ]
