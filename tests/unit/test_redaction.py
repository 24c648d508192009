"""Third-party DEBUG records are rewritten before any handler sees them: query strings, secret values, tokens."""

import json
import logging

import pytest

from kie2s3.redaction import install_log_redaction


def _send_message_batch_body(source: str) -> bytes:
    """SendMessageBatch's request body as botocore builds it: a copy job JSON-encoded in JSON."""
    job = json.dumps({"source": source, "kind": "video"})
    return json.dumps(
        {"QueueUrl": "http://127.0.0.1:4566/1/q", "Entries": [{"Id": "0", "MessageBody": job}]}
    ).encode()


@pytest.mark.parametrize(
    ("logger", "message", "args", "leak", "kept"),
    [
        (
            "urllib3.connectionpool",
            '%s://%s:%s "%s %s %s" %s %s',
            (
                "https",
                "x.r2.cloudflarestorage.com",
                443,
                "GET",
                "/b/a.mp4?X-Amz-Signature=abc&x=1",
                "HTTP/1.1",
                200,
                9,
            ),
            "X-Amz-Signature",
            '"GET /b/a.mp4?<redacted> HTTP/1.1" 200 9',
        ),
        (
            "botocore.parsers",
            "Response body:\n%r",
            (b'{"Name": "kie", "SecretString": "s3cr\\"et", "VersionId": "1"}',),
            "s3cr",
            '"SecretString": "<redacted>", "VersionId": "1"}',
        ),
        (
            "aws_lambda_powertools.event_handler.api_gateway",
            "Calling API Route Handler: {'family': None, 'token': 'tok\\'en'}",
            (),
            "tok\\'en",
            "{'family': None, 'token': '<redacted>'}",
        ),
        (
            "botocore.endpoint",
            "Making request for %s with params: %s",
            (
                "OperationModel(name=SendMessageBatch)",
                {
                    "url_path": "/",
                    "body": _send_message_batch_body(
                        "https://x.r2.cloudflarestorage.com/b/日本.mp4?X-Amz-Credential=AKIAEXAMPLE%2F1"
                        "&X-Amz-Signature=deadbeef\u00e9&X-Amz-Security-Token=FwoG\\x"
                    ),
                    "url": "http://127.0.0.1:4566/",
                },
            ),
            "FwoG",
            '/b/\\\\\\\\u65e5\\\\\\\\u672c.mp4?<redacted>\\\\", \\\\"kind\\\\": \\\\"video',
        ),
        (
            "botocore.endpoint",
            "Sending http request: %s",
            (
                "<AWSPreparedRequest stream_output=False, method=POST, url=http://127.0.0.1:4566/, "
                "headers={'X-Amz-Target': b'AmazonSQS.SendMessageBatch', "
                "'X-Amz-Security-Token': b'IQoJb3JpZ2luSessionToken', 'Content-Length': '9'}>",
            ),
            "IQoJb3JpZ2lu",
            "'X-Amz-Security-Token': b'<redacted>', 'Content-Length': '9'}>",
        ),
        (
            "botocore.auth",
            "CanonicalRequest:\n%s",
            (
                "POST\n/\n\nhost:127.0.0.1:4566\nx-amz-date:20261101T000000Z\n"
                "x-amz-security-token:IQoJb3JpZ2luSessionToken\n\nhost;x-amz-date;x-amz-security-token\n",
            ),
            "IQoJb3JpZ2lu",
            "x-amz-security-token:<redacted>\n\nhost;x-amz-date;x-amz-security-token\n",
        ),
        (
            "boto3.resources.action",
            "Calling %s:%s with %r",
            (
                "dynamodb",
                "put_item",
                {"Item": {"source": "https://tempfile.aiquickdraw.com/a.png?sig=abc&expires=1", "index": 0}},
            ),
            "sig=abc",
            "'source': 'https://tempfile.aiquickdraw.com/a.png?<redacted>', 'index': 0",
        ),
        (
            "aws_lambda_powertools.event_handler.api_gateway",
            "Calling API Route Handler: %s",
            (
                {
                    "request": "CopyRequest(task_id='t', urls=['HTTPS://h.example/a.png?X-Amz-Signature=abc#f'])"
                },
            ),
            "X-Amz-Signature",
            "urls=['HTTPS://h.example/a.png?<redacted>'])",
        ),
        (
            "urllib3.util.retry",
            "Incremented Retry for (url='%s'): %r",
            ("/dl/a.png?expires=1&sig=abc", "Retry(total=0)"),
            "sig=abc",
            "(url='/dl/a.png?<redacted>'): 'Retry(total=0)'",
        ),
        (
            "botocore.a_module_imported_later",
            "env: %s",
            ("{'AWS_SESSION_TOKEN': 'IQoJb3JpZ2luSessionToken', 'AWS_REGION': 'us-east-1'}",),
            "IQoJb3JpZ2lu",
            "{'AWS_SESSION_TOKEN': '<redacted>', 'AWS_REGION': 'us-east-1'}",
        ),
    ],
    ids=[
        "urllib3-query",
        "botocore-secret",
        "powertools-token",
        "botocore-request-body",
        "botocore-request-headers",
        "botocore-canonical-request",
        "boto3-resource-call",
        "powertools-route-args",
        "urllib3-retry",
        "any-botocore-logger",
    ],
)
def test_redaction_rewrites_secret_part(
    caplog: pytest.LogCaptureFixture,
    logger: str,
    message: str,
    args: tuple[object, ...],
    leak: str,
    kept: str,
) -> None:
    install_log_redaction()
    caplog.set_level(logging.DEBUG)
    logging.getLogger(logger).debug(message, *args)
    [record] = caplog.records
    assert leak not in record.getMessage()
    assert kept in record.getMessage()


def test_redaction_installs_once(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    installed = logging.getLogRecordFactory()
    install_log_redaction()
    assert logging.getLogRecordFactory() is installed
    caplog.set_level(logging.DEBUG)
    logging.getLogger("urllib3.connectionpool").debug('"GET /a?sig=1 HTTP/1.1" 200')
    assert caplog.records[0].getMessage() == '"GET /a?<redacted> HTTP/1.1" 200'


def test_redaction_leaves_other_records_alone(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    caplog.set_level(logging.DEBUG)
    logging.getLogger("urllib3.connectionpool").debug(
        "Starting new HTTPS connection (%d): %s:%s", 1, "a.b", 443
    )
    assert caplog.records[0].getMessage() == "Starting new HTTPS connection (1): a.b:443"


def test_redaction_leaves_the_functions_own_records_alone() -> None:
    install_log_redaction()
    make = logging.getLogRecordFactory()
    record = make("kie2s3", logging.INFO, __file__, 1, "asked %s", ("https://a.b/c?d=e",), None)
    assert record.getMessage() == "asked https://a.b/c?d=e"


def test_redaction_survives_a_record_that_cannot_be_formatted() -> None:
    install_log_redaction()
    make = logging.getLogRecordFactory()
    record = make("botocore.endpoint", logging.DEBUG, __file__, 1, "%d items", ("many",), None)
    assert (record.msg, record.args) == ("%d items", ("many",))
