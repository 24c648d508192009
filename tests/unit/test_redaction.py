"""Third-party DEBUG records are rewritten before any handler sees them: query strings, secret values, tokens."""

import logging

import pytest

from kie2s3.redaction import install_log_redaction


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
    ],
    ids=["urllib3-query", "botocore-secret", "powertools-token"],
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
    install_log_redaction()  # idempotent
    caplog.set_level(logging.DEBUG)
    logging.getLogger(logger).debug(message, *args)
    [record] = caplog.records
    assert leak not in record.getMessage()
    assert kept in record.getMessage()
    assert len(logging.getLogger(logger).filters) == 1


def test_redaction_leaves_other_records_alone(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    caplog.set_level(logging.DEBUG)
    logging.getLogger("urllib3.connectionpool").debug(
        "Starting new HTTPS connection (%d): %s:%s", 1, "a.b", 443
    )
    assert caplog.records[0].getMessage() == "Starting new HTTPS connection (1): a.b:443"
