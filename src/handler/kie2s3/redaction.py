"""Keeps secrets out of other libraries' DEBUG logs (written only when the root logger is at DEBUG).

kie2s3's own logs never carry a secret; these libraries' DEBUG records would:
urllib3 logs each request's path with its query (a presigned link's signature), botocore logs
response bodies (GetSecretValue's SecretString), Powertools' event handler logs the route's
arguments (the callback `?token=`). Each gets a filter that rewrites the secret part.
"""

import logging
import re

REDACTED = "<redacted>"

# logger name -> (pattern, replacement) rewrites of its records' messages
_REWRITES: dict[str, tuple[tuple[re.Pattern[str], str], ...]] = {
    "urllib3.connectionpool": ((re.compile(r"\?[^\s\"']*"), f"?{REDACTED}"),),
    "botocore.parsers": (
        # The body is logged as repr(bytes): a quote inside the JSON string shows as \\" there.
        (re.compile(r'"Secret(String|Binary)"\s*:\s*"(?:\\\\"|\\.|[^"\\])*"'), rf'"Secret\1": "{REDACTED}"'),
    ),
    "aws_lambda_powertools.event_handler.api_gateway": (
        (re.compile(r"('token'\s*:\s*)(['\"])(?:(?!\2)[^\\]|\\.)*\2"), rf"\1'{REDACTED}'"),
    ),
}


class RedactingFilter(logging.Filter):
    """Rewrites the matching parts of a record's message; never drops a record."""

    def __init__(self, rewrites: tuple[tuple[re.Pattern[str], str], ...]) -> None:
        super().__init__()
        self.rewrites = rewrites

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact in place (the message is formatted once here, then kept without args)."""
        message = record.getMessage()
        redacted = message
        for pattern, replacement in self.rewrites:
            redacted = pattern.sub(replacement, redacted)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def install_log_redaction() -> None:
    """Attach the filters to the loggers that create those records (idempotent)."""
    for name, rewrites in _REWRITES.items():
        target = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in target.filters):
            target.addFilter(RedactingFilter(rewrites))
