"""The emulated AWS: moto's server in its own process, provisioned from template.yaml's own resources."""

import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from devstack.aws import LocalStack, MotoServer, aws_environment, provision
from devstack.template import Resolver, TemplateError, load_template
from tests.unit.test_template import sam_transform

OVERRIDES = {"KieApiBaseUrl": "http://127.0.0.1:9", "ObjectPrefix": "archive/"}
LOCAL_ENVIRONMENT = {"COPY_MODE": "inline", "ALLOW_LOCAL_SOURCES": "true"}
SECRETS = {"kie2s3/kie-api-key": "local-api-key", "kie2s3/webhook-hmac-key": "local-hmac-key"}


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def local(moto: MotoServer, template: dict[str, Any]) -> LocalStack:
    return provision(
        moto.endpoint_url,
        template,
        parameter_overrides=OVERRIDES,
        secrets=SECRETS,
        environment=LOCAL_ENVIRONMENT,
    )


def client(moto: MotoServer, service: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=moto.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_aws_environment_uses_only_boto3_standard_variables() -> None:
    assert aws_environment("http://127.0.0.1:1234") == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1234",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }


def test_provision_names_resources_after_stack_and_logical_id(local: LocalStack) -> None:
    assert local.physical_ids["ArchiveBucket"] == "kie2s3-local-archivebucket"
    assert local.physical_ids["TasksTable"] == "kie2s3-local-taskstable"
    assert local.physical_ids["IdempotencyTable"] == "kie2s3-local-idempotencytable"
    assert local.physical_ids["CopyQueue"].endswith("/123456789012/kie2s3-local-copyqueue")
    assert local.physical_ids["KieApiKeySecretId"] == "kie2s3/kie-api-key"


def test_provision_bucket_has_lifecycle_rule(moto: MotoServer, local: LocalStack) -> None:
    rules = client(moto, "s3").get_bucket_lifecycle_configuration(Bucket=local.physical_ids["ArchiveBucket"])
    [rule] = rules["Rules"]
    assert rule["ID"] == "AbortIncompleteMultipartUpload"
    assert rule["Status"] == "Enabled"
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}


def test_provision_bucket_blocks_public_access(moto: MotoServer, local: LocalStack) -> None:
    block = client(moto, "s3").get_public_access_block(Bucket=local.physical_ids["ArchiveBucket"])
    assert block["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }


def test_provision_bucket_encrypts_and_enforces_owner(moto: MotoServer, local: LocalStack) -> None:
    s3 = client(moto, "s3")
    bucket = local.physical_ids["ArchiveBucket"]
    [rule] = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert rule["BucketKeyEnabled"] is True
    ownership = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]
    assert ownership == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}


def test_provision_tables_have_the_template_key_schema(
    moto: MotoServer, local: LocalStack, template: dict[str, Any]
) -> None:
    dynamodb = client(moto, "dynamodb")
    for logical_id in ("TasksTable", "IdempotencyTable"):
        table = dynamodb.describe_table(TableName=local.physical_ids[logical_id])["Table"]
        properties = template["Resources"][logical_id]["Properties"]
        assert table["KeySchema"] == properties["KeySchema"]
        assert table["AttributeDefinitions"] == properties["AttributeDefinitions"]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert table["SSEDescription"]["Status"] == "ENABLED"


def test_provision_idempotency_table_has_ttl(moto: MotoServer, local: LocalStack) -> None:
    ttl = client(moto, "dynamodb").describe_time_to_live(TableName=local.physical_ids["IdempotencyTable"])
    assert ttl["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiration"}


def test_provision_tasks_table_has_point_in_time_recovery(moto: MotoServer, local: LocalStack) -> None:
    backups = client(moto, "dynamodb").describe_continuous_backups(TableName=local.physical_ids["TasksTable"])
    status = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert status["PointInTimeRecoveryStatus"] == "ENABLED"


def test_provision_queue_redrives_to_the_dead_letter_queue(moto: MotoServer, local: LocalStack) -> None:
    sqs = client(moto, "sqs")
    dlq_arn = sqs.get_queue_attributes(
        QueueUrl=local.physical_ids["CopyDeadLetterQueue"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    attributes = sqs.get_queue_attributes(QueueUrl=local.physical_ids["CopyQueue"], AttributeNames=["All"])[
        "Attributes"
    ]
    assert json.loads(attributes["RedrivePolicy"]) == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}
    assert attributes["VisibilityTimeout"] == "5400"
    assert attributes["MessageRetentionPeriod"] == "1209600"
    assert attributes["SqsManagedSseEnabled"] == "true"


def test_provision_secrets_are_readable(moto: MotoServer, local: LocalStack) -> None:
    secrets = client(moto, "secretsmanager")
    for secret_id, value in SECRETS.items():
        assert secrets.get_secret_value(SecretId=secret_id)["SecretString"] == value
    assert local.env["KIE_API_KEY_SECRET"] == "kie2s3/kie-api-key"
    assert local.env["KIE_WEBHOOK_HMAC_SECRET"] == "kie2s3/webhook-hmac-key"


def test_provision_env_points_at_the_created_resources(moto: MotoServer, local: LocalStack) -> None:
    env = local.env
    buckets = [b["Name"] for b in client(moto, "s3").list_buckets()["Buckets"]]
    assert env["BUCKET_NAME"] in buckets
    assert env["BUCKET_NAME"] == local.physical_ids["ArchiveBucket"]
    assert env["TASKS_TABLE"] == local.physical_ids["TasksTable"]
    assert env["IDEMPOTENCY_TABLE"] == local.physical_ids["IdempotencyTable"]
    assert (
        client(moto, "sqs").get_queue_url(QueueName="kie2s3-local-copyqueue")["QueueUrl"]
        == (env["COPY_QUEUE_URL"])
    )
    assert env["AWS_ENDPOINT_URL"] == moto.endpoint_url
    assert env["AWS_REGION"] == "us-east-1"


def test_provision_env_applies_the_overrides(local: LocalStack) -> None:
    assert local.env["KIE_API_BASE_URL"] == "http://127.0.0.1:9"
    assert local.env["OBJECT_PREFIX"] == "archive/"
    assert local.parameters["ObjectPrefix"] == "archive/"
    assert local.parameters["LogLevel"] == "INFO"


def test_provision_env_takes_the_local_stacks_own_settings(local: LocalStack) -> None:
    # The template fixes both for a deployed stack; only a local run sets them, over the template's.
    assert local.env["COPY_MODE"] == "inline"
    assert local.env["ALLOW_LOCAL_SOURCES"] == "true"


# ------------------------------------------------------------------ read back as CloudFormation properties
# Of these resources, moto's own CloudFormation (create_stack, moto 5.2.5) creates the queues' attributes
# and the tables' keys, indexes and billing mode, but of the bucket only its encryption algorithm, and
# no table's SSE, TTL or point-in-time recovery: why the local stack provisions them itself (docs/local-stack.md,
# Why the local stack provisions the template itself). These read each resource back in the template's property names.


def _scalars_as_text(value: Any) -> Any:
    """Every scalar as CloudFormation hands it to a resource: text (true/false for booleans)."""
    if isinstance(value, dict):
        return {key: _scalars_as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_scalars_as_text(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _bucket_setting(s3: Any, operation: str, bucket: str, key: str) -> Any:
    """One of the bucket's configurations, None when S3 answers that it has none."""
    try:
        return getattr(s3, operation)(Bucket=bucket).get(key)
    except s3.exceptions.ClientError as exc:
        code = exc.response["Error"]["Code"]
        assert code.startswith("NoSuch") or code.endswith("NotFound") or code.endswith("NotFoundError"), code
        return None


def _bucket_as_properties(s3: Any, bucket: str) -> dict[str, Any]:
    """What S3 reports of the bucket, in AWS::S3::Bucket's property names (absent: not configured)."""
    encryption = _bucket_setting(s3, "get_bucket_encryption", bucket, "ServerSideEncryptionConfiguration")
    block = _bucket_setting(s3, "get_public_access_block", bucket, "PublicAccessBlockConfiguration")
    ownership = _bucket_setting(s3, "get_bucket_ownership_controls", bucket, "OwnershipControls")
    lifecycle = _bucket_setting(s3, "get_bucket_lifecycle_configuration", bucket, "Rules")
    versioning = _bucket_setting(s3, "get_bucket_versioning", bucket, "Status")
    lock = _bucket_setting(s3, "get_object_lock_configuration", bucket, "ObjectLockConfiguration")
    properties: dict[str, Any] = {}
    if encryption:
        properties["BucketEncryption"] = {
            "ServerSideEncryptionConfiguration": [
                {
                    "ServerSideEncryptionByDefault": rule["ApplyServerSideEncryptionByDefault"],
                    "BucketKeyEnabled": rule.get("BucketKeyEnabled", False),
                }
                for rule in encryption["Rules"]
            ]
        }
    if block:
        properties["PublicAccessBlockConfiguration"] = block
    if ownership:
        properties["OwnershipControls"] = ownership
    if lifecycle:
        properties["LifecycleConfiguration"] = {
            "Rules": [
                {"Id": rule["ID"], "Status": rule["Status"]}
                | {key: rule[key] for key in ("AbortIncompleteMultipartUpload",) if key in rule}
                for rule in lifecycle
            ]
        }
    if versioning:
        properties["VersioningConfiguration"] = {"Status": versioning}
    if lock:
        properties["ObjectLockEnabled"] = lock["ObjectLockEnabled"] == "Enabled"
        properties["ObjectLockConfiguration"] = {"ObjectLockEnabled": lock["ObjectLockEnabled"]}
        if "Rule" in lock:
            retention = lock["Rule"]["DefaultRetention"]
            properties["ObjectLockConfiguration"]["Rule"] = {
                "DefaultRetention": {key: value for key, value in retention.items() if value}
            }
    return properties


def _table_as_properties(dynamodb: Any, table_name: str) -> dict[str, Any]:
    """What DynamoDB reports of the table, in AWS::DynamoDB::Table's property names."""
    table = dynamodb.describe_table(TableName=table_name)["Table"]
    properties: dict[str, Any] = {
        "BillingMode": table["BillingModeSummary"]["BillingMode"],
        "AttributeDefinitions": table["AttributeDefinitions"],
        "KeySchema": table["KeySchema"],
    }
    if table.get("GlobalSecondaryIndexes"):
        properties["GlobalSecondaryIndexes"] = [
            {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
            for index in table["GlobalSecondaryIndexes"]
        ]
    if table.get("SSEDescription", {}).get("Status") == "ENABLED":
        properties["SSESpecification"] = {"SSEEnabled": True}
    if table.get("StreamSpecification", {}).get("StreamEnabled"):
        properties["StreamSpecification"] = {"StreamViewType": table["StreamSpecification"]["StreamViewType"]}
    ttl = dynamodb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    if ttl["TimeToLiveStatus"] == "ENABLED":
        properties["TimeToLiveSpecification"] = {"AttributeName": ttl["AttributeName"], "Enabled": True}
    backups = dynamodb.describe_continuous_backups(TableName=table_name)["ContinuousBackupsDescription"]
    if backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED":
        properties["PointInTimeRecoverySpecification"] = {"PointInTimeRecoveryEnabled": True}
    return properties


def _queue_as_properties(sqs: Any, queue_url: str, declared: dict[str, Any]) -> dict[str, Any]:
    """The queue's attributes the template declares (every other one has a default), as properties."""
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    return {
        name: json.loads(attributes[name]) if name == "RedrivePolicy" else attributes.get(name)
        for name in declared
    }


@pytest.mark.parametrize("overrides", [{}, {"ObjectLockRetentionDays": "7"}], ids=["defaults", "object-lock"])
def test_provisioned_resources_read_back_as_the_transformed_template_declares(
    moto: MotoServer, local: LocalStack, overrides: dict[str, str]
) -> None:
    """Every bucket, table and queue property of SAM's transform, resolved, is what the emulator reports."""
    stack = (
        provision(
            moto.endpoint_url, load_template(), stack_name="kie2s3-locked", parameter_overrides=overrides
        )
        if overrides
        else local
    )
    transformed = sam_transform()
    resolver = Resolver(transformed, stack.parameters, stack.physical_ids)
    compared = []
    for logical_id, resource in transformed["Resources"].items():
        physical_id = stack.physical_ids.get(logical_id)
        if physical_id is None:  # not provisioned locally (functions, alarms...) or off by its Condition
            continue
        declared = resolver.resolve(resource["Properties"])
        match resource["Type"]:
            case "AWS::S3::Bucket":
                reported = _bucket_as_properties(client(moto, "s3"), physical_id)
            case "AWS::DynamoDB::Table":
                reported = _table_as_properties(client(moto, "dynamodb"), physical_id)
            case "AWS::SQS::Queue":
                reported = _queue_as_properties(client(moto, "sqs"), physical_id, declared)
            case kind:
                pytest.fail(f"{logical_id}: the local stack provisions a {kind}, which this test cannot read")
        assert _scalars_as_text(reported) == _scalars_as_text(declared), logical_id
        compared.append(logical_id)
    assert sorted(compared) == [
        "ArchiveBucket",
        "CopyDeadLetterQueue",
        "CopyQueue",
        "EventsDeadLetterQueue",
        "ForwardDeadLetterQueue",
        "ForwardQueue",
        "IdempotencyTable",
        "TasksTable",
    ]


def test_provision_rejects_a_property_it_does_not_provision(template: dict[str, Any]) -> None:
    drifted = json.loads(json.dumps(template))
    drifted["Resources"]["CopyQueue"]["Properties"]["SomethingNew"] = 1
    # Raised before any request: the endpoint is never contacted.
    with pytest.raises(TemplateError, match=r"CopyQueue .*SomethingNew"):
        provision("http://127.0.0.1:9", drifted)


def test_moto_server_reset_forgets_resources(template: dict[str, Any]) -> None:
    with MotoServer() as server:
        provision(server.endpoint_url, template)
        server.reset()
        assert client(server, "s3").list_buckets()["Buckets"] == []
        again = provision(server.endpoint_url, template)
        assert again.env["BUCKET_NAME"] == "kie2s3-local-archivebucket"


def test_moto_server_stop_leaves_no_process() -> None:
    server = MotoServer().start()
    pid = server.pid
    os.kill(pid, 0)  # running
    server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    server.stop()  # a second stop is harmless


def test_ledger_is_provisioned_with_its_stream(moto: MotoServer, local: LocalStack) -> None:
    table = client(moto, "dynamodb").describe_table(TableName=local.env["TASKS_TABLE"])["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    stream = client(moto, "dynamodbstreams").describe_stream(StreamArn=table["LatestStreamArn"])
    assert stream["StreamDescription"]["StreamStatus"] == "ENABLED"


def test_failed_transaction_leaves_the_stream_as_it_was(moto: MotoServer, local: LocalStack) -> None:
    # devstack.moto_server copies a stream shallowly when moto rolls a transaction back: no record of
    # the cancelled writes may stay, and the records before and after it must all be there. (moto
    # restores a copy of the table: an iterator taken before reads the old one, so take a new one.)
    dynamodb, streams = client(moto, "dynamodb"), client(moto, "dynamodbstreams")
    name = local.env["TASKS_TABLE"]
    arn = dynamodb.describe_table(TableName=name)["Table"]["LatestStreamArn"]

    def item(pk: str) -> dict[str, Any]:
        return {"pk": {"S": pk}, "sk": {"S": "TASK"}}

    dynamodb.put_item(TableName=name, Item=item("rollback-a"))
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": name, "Item": item("rollback-b")}},
                {
                    "Put": {
                        "TableName": name,
                        "Item": item("rollback-a"),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
    dynamodb.put_item(TableName=name, Item=item("rollback-c"))
    [shard] = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    start = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )
    records = streams.get_records(ShardIterator=start["ShardIterator"])["Records"]
    keys = [r["dynamodb"]["Keys"]["pk"]["S"] for r in records]
    assert [k for k in keys if k.startswith("rollback-")] == ["rollback-a", "rollback-c"]


def test_failed_transaction_puts_back_what_it_overwrote_across_tables(
    moto: MotoServer, local: LocalStack
) -> None:
    # devstack.moto_server keeps the prior version of each item a transaction writes, not a copy of
    # each table it names: a cancelled one must still leave every item as it was, in every table.
    dynamodb = client(moto, "dynamodb")
    tasks, records = local.env["TASKS_TABLE"], local.env["IDEMPOTENCY_TABLE"]
    task = {"pk": {"S": "overwrite-a"}, "sk": {"S": "TASK"}}
    dynamodb.put_item(TableName=tasks, Item={**task, "family": {"S": "before"}})
    dynamodb.put_item(TableName=records, Item={"id": {"S": "overwrite-r"}, "status": {"S": "COMPLETED"}})
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": tasks, "Item": {**task, "family": {"S": "after"}}}},
                {"Put": {"TableName": records, "Item": {"id": {"S": "overwrite-r"}, "status": {"S": "X"}}}},
                {"Put": {"TableName": records, "Item": {"id": {"S": "overwrite-new"}}}},
                {
                    "ConditionCheck": {
                        "TableName": tasks,
                        "Key": {"pk": {"S": "overwrite-absent"}, "sk": {"S": "TASK"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )
    assert dynamodb.get_item(TableName=tasks, Key=task)["Item"]["family"] == {"S": "before"}
    kept = dynamodb.get_item(TableName=records, Key={"id": {"S": "overwrite-r"}})["Item"]
    assert kept["status"] == {"S": "COMPLETED"}
    assert "Item" not in dynamodb.get_item(TableName=records, Key={"id": {"S": "overwrite-new"}})


def test_listing_object_versions_leaves_every_object_readable(moto: MotoServer, local: LocalStack) -> None:
    # devstack.moto_server lists views of the versions sharing their bytes: a view that moto
    # disposes of once the listing is answered must not close the bytes of the object it shows.
    s3 = client(moto, "s3")
    bucket = local.env["BUCKET_NAME"]
    s3.put_object(Bucket=bucket, Key="views/kept.bin", Body=b"x" * 700)
    s3.list_object_versions(Bucket=bucket, Prefix="views/")
    s3.list_object_versions(Bucket=bucket, Prefix="elsewhere/")
    assert s3.get_object(Bucket=bucket, Key="views/kept.bin")["Body"].read() == b"x" * 700
