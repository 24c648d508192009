"""The project's error hierarchy: retryable vs permanent, each with the HTTP status it maps to."""

from http import HTTPStatus


class Kie2S3Error(Exception):
    """Base of every error kie2s3 raises on purpose; `reason` (and `details`) are safe to show a caller."""

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    retryable: bool = False

    def __init__(self, reason: str, details: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


class PermanentError(Kie2S3Error):
    """Retrying will not help: record the failure and stop."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY


class RetryableError(Kie2S3Error):
    """A passing fault (rate limit, 5xx, network): retry later."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    retryable = True


class RetryLaterError(RetryableError):
    """Deliver this message again in `after_seconds` (a forward waiting for its files, or backing off)."""

    def __init__(self, reason: str, after_seconds: int) -> None:
        super().__init__(reason)
        self.after_seconds = after_seconds


class CopyInProgressError(RetryableError):
    """Another invocation is copying the same file right now: deliver this job again later."""


class TakenDownError(PermanentError):
    """The task was taken down (make takedown): nothing of it is copied or stored again."""


class LinkExpiredError(RetryableError):
    """A download link answered 403: resolve a fresh one and try again."""


class SourceChangedError(RetryableError):
    """A range came from another version of the source than the opening response: the transfer
    copies the file from one plain GET instead (transfer/run.py)."""


class BadRequestError(PermanentError):
    """The caller sent something we cannot use."""

    status = HTTPStatus.BAD_REQUEST


# What every route answers a body it cannot read, whichever layer reads it.
NOT_JSON = "body is not JSON"
NOT_A_JSON_OBJECT = "body is not a JSON object"


class AuthenticationError(PermanentError):
    """A callback's signature or token is missing, wrong or stale."""

    status = HTTPStatus.UNAUTHORIZED


class NotFoundError(PermanentError):
    """The thing asked for does not exist."""

    status = HTTPStatus.NOT_FOUND


class SourceRefusedError(PermanentError):
    """A source URL breaks the source policy (scheme, host, size)."""


class ConfigurationError(Kie2S3Error):
    """The function's environment is incomplete or invalid."""


class ObjectExistsError(PermanentError):
    """A create-only write found the key taken: the caller decides whether it holds the same bytes."""

    status = HTTPStatus.CONFLICT


class UpstreamError(PermanentError):
    """kie.ai answered something we cannot use."""

    status = HTTPStatus.BAD_GATEWAY


class KieRejectedError(UpstreamError):
    """kie.ai answered with a permanent envelope code (401, 402, 404, 422, 505, ...)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class PayloadTooLargeError(BadRequestError):
    """A request body larger than any the route can legitimately receive."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
