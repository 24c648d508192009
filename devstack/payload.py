"""Lambda's invocation payload limits, enforced where the local stack hands a function its event and
takes its answer: the in-process stand-in (`devstack.lambda_runtime.invoke`) and the function
processes' Runtime API (`devstack.sandbox`) both check here, so each limit is written once.

A synchronous invocation's request and response are each at most 6 MB (Lambda's Invoke API reference:
"For synchronous invocations, the maximum payload size is 6 MB",
https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html). Lambda counts them in bytes of the
JSON it carries: a request must be smaller than 6,291,456 bytes (`RequestEntityTooLargeException`),
a response at most 6,291,556 (`Function.ResponseSizeTooLarge`), the figures its error messages give.
Lambda's event source mappings (SQS, DynamoDB streams) invoke synchronously too, with batches made
to fit (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
"""

import json
from typing import Any, Final

MAX_REQUEST_BYTES: Final = 6 * 1024 * 1024  # "Request must be smaller than 6291456 bytes"
MAX_RESPONSE_BYTES: Final = 6 * 1024 * 1024 + 100  # "maximum allowed payload size (6291556 bytes)"
REQUEST_TOO_LARGE: Final = "RequestEntityTooLargeException"
RESPONSE_TOO_LARGE: Final = "Function.ResponseSizeTooLarge"


class FunctionError(Exception):
    """An invocation that failed: the handler raised, the process was killed, it timed out, or its
    event or answer was larger than Lambda carries. `error_type` is Lambda's name for it."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


def encoded(document: Any) -> bytes:
    """A payload as Lambda's runtime carries it: JSON (ASCII, as Python's runtime serialises)."""
    return json.dumps(document).encode()


def check_request(payload: bytes) -> bytes:
    """The event's payload, or FunctionError as Lambda's Invoke refuses one too large (nothing runs)."""
    if len(payload) >= MAX_REQUEST_BYTES:
        raise FunctionError(
            REQUEST_TOO_LARGE,
            f"Request must be smaller than {MAX_REQUEST_BYTES} bytes for the InvokeFunction operation",
        )
    return payload


def response_error(size: int) -> FunctionError | None:
    """The error Lambda gives an answer of `size` bytes (None: it is carried)."""
    if size <= MAX_RESPONSE_BYTES:
        return None
    return FunctionError(
        RESPONSE_TOO_LARGE,
        f"Response payload size ({size} bytes) exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
    )


def check_response(payload: bytes) -> bytes:
    """The answer's payload, or FunctionError as Lambda fails an invocation whose answer is too large."""
    if (error := response_error(len(payload))) is not None:
        raise error
    return payload
