"""Keeps secrets out of other libraries' DEBUG logs (written only when the root logger is at DEBUG).

kie2s3's own logs never carry a secret; other libraries' DEBUG records would: botocore logs every
request's parameters and body (a copy job's full source URL, presigned query included, goes to SQS
and to the ledger), its headers and canonical request (the `X-Amz-Security-Token` of the function's
session, always set on Lambda) and response bodies (GetSecretValue's SecretString); boto3 logs
resource calls' parameters; urllib3 logs each request's path with its query (a presigned link's
signature); Powertools' event handler logs the route's arguments (the callback `?token=`, the
URLs of `POST /copies`). Every record of those libraries is rewritten as it is created, whichever
of their loggers makes it: the query of any URL, the values of session tokens, signatures and
credentials, and secret values are replaced.
"""

import logging
import re
from typing import Any

REDACTED = "<redacted>"

# Every logger under these names (`botocore.endpoint`, `botocore.auth`, `urllib3.connectionpool`, ...).
_LIBRARIES = ("botocore", "boto3", "s3transfer", "urllib3", "aws_lambda_powertools")
# A query runs to whitespace or a quote. Inside repr()s and JSON nested in JSON, escapes are runs of
# backslashes: one before a quote ends the string the URL is in, any other (\u00e9, \\x) is part of it.
_ESCAPE = r"\\+(?![\\\"'])"
_QUERY = rf"\?(?:[^\s\"'\\<>]|{_ESCAPE})*"  # the fragment, if any, goes with it
_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = (
    # The query of any http(s) URL (botocore's request bodies and params, boto3's, Powertools').
    (re.compile(rf"(?i)(\bhttps?://(?:[^\s?#\"'\\<>]|{_ESCAPE})*){_QUERY}"), rf"\1?{REDACTED}"),
    # The query of a bare path (urllib3's `"GET /path?query HTTP/1.1"`, its retries' `url='/path?...'`).
    (re.compile(rf"((?:^|(?<=[\s\"'(=]))/(?:[^\s?#\"'\\<>]|{_ESCAPE})*){_QUERY}"), rf"\1?{REDACTED}"),
    # Session tokens, signatures and credentials as headers, canonical headers, parameters or fields.
    (
        re.compile(
            r"(?i)((?<![\w-])(?:x-amz-security-token|x-amz-signature|x-amz-credential|aws_session_token"
            r"|session_?token|security_?token)\\*['\"]?\s*[:=]\s*b?\\*['\"]?)[^\s'\"&,;}\\]+"
        ),
        rf"\1{REDACTED}",
    ),
    # The body is logged as repr(bytes): a quote inside the JSON string shows as \\" there.
    (re.compile(r'"Secret(String|Binary)"\s*:\s*"(?:\\\\"|\\.|[^"\\])*"'), rf'"Secret\1": "{REDACTED}"'),
    # Powertools' route arguments: {'family': None, 'token': '...'}.
    (re.compile(r"('token'\s*:\s*)(['\"])(?:(?!\2)[^\\]|\\.)*\2"), rf"\1'{REDACTED}'"),
)


def redact(message: str) -> str:
    """The message with every secret part replaced."""
    for pattern, replacement in _REWRITES:
        message = pattern.sub(replacement, message)
    return message


class _RedactingFactory:
    """A LogRecord factory: the libraries' records are redacted in place (formatted once here, then
    kept without args), before any filter or handler sees them; every other record is left alone."""

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.previous(*args, **kwargs)
        if record.name.partition(".")[0] in _LIBRARIES:
            try:
                message = record.getMessage()
            except Exception:  # a broken record is the handler's to report, as ever
                return record
            redacted = redact(message)
            if redacted != message:
                record.msg, record.args = redacted, None
        return record


def install_log_redaction() -> None:
    """Install the redacting LogRecord factory over whatever factory is in place (idempotent)."""
    current = logging.getLogRecordFactory()
    if not isinstance(current, _RedactingFactory):
        logging.setLogRecordFactory(_RedactingFactory(current))
