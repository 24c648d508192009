"""The HTTP API routes (payload 2.0): each parses its input, calls one use case, returns a model."""

import base64
import binascii
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, SecurityScheme
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from kie2s3.errors import NOT_A_JSON_OBJECT, NOT_JSON, BadRequestError, Kie2S3Error, PayloadTooLargeError
from kie2s3.handlers.wiring import get_services
from kie2s3.logic.copies import request_bulk_copies, request_copies
from kie2s3.logic.receive import CallbackRequest, receive_callback
from kie2s3.logic.services import Services
from kie2s3.logic.status import status_document
from kie2s3.models import (
    COPIES_FORMS,
    COPIES_TAGS,
    TASK_ID_REGEX,
    BulkCopyDocument,
    BulkCopyRequest,
    CopiesBody,
    StatusDocument,
)
from kie2s3.observability import logger, metrics
from kie2s3.settings import CALLBACK_PATH

# kie.ai callbacks are a few KiB; a POST /copies body naming its cap of 50 files by URLs of 4 KiB is
# ~205 KiB (entries naming a file again, up to MAX_URL_ENTRIES_PER_REQUEST, can meet this limit first).
MAX_BODY_BYTES = 256 * 1024
CALLBACK_ROUTE = f"POST {CALLBACK_PATH}"


class ErrorDocument(BaseModel):
    """The body of every 4xx/5xx kie2s3 answers on purpose."""

    message: str
    details: list[str] = []


def body_size(event: Mapping[str, Any]) -> int:
    """The byte size of an HTTP API event's body, once decoded (base64 bodies count their decoded size)."""
    body = event.get("body")
    if not isinstance(body, str):
        return 0
    if event.get("isBase64Encoded"):
        # 4 characters carry 3 bytes; the `=` padding (at most 2) carries none.
        padding = min(len(body) - len(body.rstrip("=")), 2)
        return (len(body) - padding) * 3 // 4
    return len(body.encode(errors="surrogatepass"))


def _refused(route_key: str | None, status: int, reason: str) -> None:
    """Every refusal (a 4xx answer) is logged and counted here, once, whichever layer refused it:
    `RequestsRefused` for every route, `CallbacksRejected` for kie.ai's callbacks as well."""
    logger.warning("request refused", reason=reason, status=status, route=route_key)
    metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
    if route_key == CALLBACK_ROUTE:
        metrics.add_metric(name="CallbacksRejected", unit=MetricUnit.Count, value=1)


def _read_as_json(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The event with its body declared JSON: every body is read as JSON, whatever its content-type
    (curl's -d says form-urlencoded, no header at all is common), as kie.ai's callbacks always were."""
    headers = event.get("headers") or {}
    declared = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if not event.get("body") or str(declared).lower().startswith(content_types.APPLICATION_JSON):
        return event
    kept = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    return {**event, "headers": {**kept, "content-type": content_types.APPLICATION_JSON}}


class _Resolver(APIGatewayHttpResolver):
    """Powertools' resolver, refusing oversized bodies before anything (validation included) reads them."""

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        size = body_size(event)
        if size <= MAX_BODY_BYTES:
            return super().resolve(_read_as_json(event), context)
        error = PayloadTooLargeError(f"request body is {size} bytes; the limit is {MAX_BODY_BYTES}")
        _refused(event.get("routeKey"), int(error.status), error.reason)
        return {
            "statusCode": int(error.status),
            "headers": {"Content-Type": content_types.APPLICATION_JSON},
            "body": ErrorDocument(message=error.reason).model_dump_json(),
            "isBase64Encoded": False,
            "cookies": [],
        }


app = _Resolver(enable_validation=True)


def _json(status: int, model: BaseModel) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=model.model_dump_json(by_alias=True),
    )


@app.exception_handler(Kie2S3Error)  # type: ignore[untyped-decorator]  # Powertools leaves it untyped
def _known_error(exc: Kie2S3Error) -> Response[str]:
    if exc.status >= 500:
        logger.exception("request failed", reason=exc.reason)
    else:
        _refused(app.current_event.route_key, exc.status, exc.reason)
    return _json(exc.status, ErrorDocument(message=exc.reason, details=list(exc.details)))


@app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
def _invalid_request(exc: RequestValidationError) -> Response[str]:
    document = in_user_words(exc.errors())
    _refused(app.current_event.route_key, 400, document.message)
    return _json(400, document)


def in_user_words(errors: Sequence[Mapping[str, Any]]) -> ErrorDocument:
    """What a request's validation errors mean to its caller: a body that is not JSON or takes no form
    of the route is said once, as the callback route says it; any other error names the field as the
    caller wrote it (`taskIds[0]`, `query parameter family`), never the validator's path to it."""
    for error in errors:
        if error.get("type") == "json_invalid" or (
            error.get("loc") == ("body",) and error.get("type") == "missing"
        ):
            return ErrorDocument(message=NOT_JSON)
        if error.get("type") == "copies_form":
            message = COPIES_FORMS if isinstance(error.get("input"), dict) else NOT_A_JSON_OBJECT
            return ErrorDocument(message=message)
    details = [f"{_where(tuple(e.get('loc', ())))}: {_said(str(e.get('msg')))}" for e in errors]
    return ErrorDocument(message="invalid request", details=details)


def _where(loc: tuple[Any, ...]) -> str:
    if not loc:
        return "request"
    place, *path = loc
    if place != "body":
        return f"{place} parameter {'.'.join(map(str, path))}"
    if path and path[0] in COPIES_TAGS:
        path = path[1:]
    name = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")
    return name or "body"


def _said(message: str) -> str:
    return message.removeprefix("Value error, ")


@app.exception_handler([RecursionError, UnicodeDecodeError])  # type: ignore[untyped-decorator]
def _unparseable_body(exc: RecursionError | UnicodeDecodeError) -> Response[str]:
    # Powertools' validation decodes and parses the body before any route code runs: a binary body
    # or one nested thousands deep (it fits in MAX_BODY_BYTES) fails there, and it is the caller's fault.
    what = "nests too deeply to parse as JSON" if isinstance(exc, RecursionError) else "is not UTF-8 text"
    _refused(app.current_event.route_key, 400, f"request body {what}")
    return _json(400, ErrorDocument(message=f"request body {what}"))


def _services_with_deadline() -> tuple[Services, float]:
    """The services, with this invocation registered for idempotency, and its deadline."""
    services = get_services()
    context = app.lambda_context
    services.guard.register_lambda_context(context)
    return services, time.monotonic() + context.get_remaining_time_in_millis() / 1000


def _raw_body() -> bytes:
    event = app.current_event
    body = event.body or ""
    if not event.is_base64_encoded:
        try:
            return body.encode()
        except UnicodeEncodeError as exc:  # a lone surrogate: no UTF-8 text holds one
            raise BadRequestError("request body is not UTF-8 text") from exc
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequestError("body is not valid base64") from exc


# Who may call each route, as openapi.json states it. Deployed, `/copies` and `/tasks` are
# IAM-authorised at the gateway (SigV4-signed requests; the gateway answers 403 otherwise). A callback
# carries kie.ai's two webhook headers (HMAC of "<taskId>.<timestamp>") or, with HMAC off, the
# callback token as `?token=`; the function checks them and answers 401 otherwise.
SECURITY_SCHEMES: dict[str, SecurityScheme] = {
    "sigv4": APIKey(
        name="Authorization",
        in_=APIKeyIn.header,
        description="AWS Signature Version 4 for `execute-api` (the gateway's AWS_IAM authorizer;"
        " with X-Amz-Date, and X-Amz-Security-Token for temporary credentials)",
    ),
    "kieWebhookTimestamp": APIKey(
        name="X-Webhook-Timestamp",
        in_=APIKeyIn.header,
        description="kie.ai's webhook timestamp (Unix seconds), within WEBHOOK_TOLERANCE_SECONDS of now",
    ),
    "kieWebhookSignature": APIKey(
        name="X-Webhook-Signature",
        in_=APIKeyIn.header,
        description='kie.ai\'s webhook signature: base64(HMAC-SHA256(key, "<taskId>.<timestamp>"))',
    ),
    "callbackToken": APIKey(
        name="token",
        in_=APIKeyIn.query,
        description="the callback token (CALLBACK_TOKEN_SECRET), when the webhook HMAC key is off",
    ),
}
IAM: list[dict[str, list[str]]] = [{"sigv4": []}]
KIE_SIGNED: list[dict[str, list[str]]] = [
    {"kieWebhookTimestamp": [], "kieWebhookSignature": []},
    {"callbackToken": []},
]
_ERRORS = {
    400: "Invalid request: the reasons are in `message` and `details`",
    401: "Signature or token missing, wrong or stale",
    403: "Refused by the gateway's IAM authorizer: not SigV4-signed, signed wrongly, or by a principal"
    " not allowed execute-api:Invoke",
    404: "Unknown task",
    413: "Body larger than 256 KiB",
    502: "kie.ai answered something unusable",
    503: "A passing fault (AWS or kie.ai): retry",
}


def _answers(ok: int | tuple[int, ...], description: str, *errors: int) -> dict[int, OpenAPIResponse]:
    """The documented answers: the status document on success, the ErrorDocument for each error."""

    def answer(text: str, model: type[BaseModel]) -> OpenAPIResponse:
        return {"description": text, "content": {content_types.APPLICATION_JSON: {"model": model}}}

    oks = ok if isinstance(ok, tuple) else (ok,)
    return {code: answer(description, StatusDocument) for code in oks} | {
        code: answer(_ERRORS[code], ErrorDocument) for code in sorted(errors)
    }


@app.post(
    CALLBACK_PATH,
    summary="kie.ai task callback (any family)",
    responses=_answers(
        200, "Accepted or deliberately ignored; the task's status document", 400, 401, 413, 503
    ),
    security=KIE_SIGNED,
)
def callback(
    family: Annotated[
        str | None,
        Query(
            description="family hint for ambiguous shapes; an unknown one is ignored (the family is"
            " then detected from the body's shape)"
        ),
    ] = None,
) -> Response[str]:
    """A kie.ai task callback, authenticated by kie.ai's webhook HMAC headers or the callback token."""
    event = app.current_event
    token = (event.query_string_parameters or {}).get("token")  # declared by KIE_SIGNED's callbackToken
    query = {k: v for k, v in {"family": family, "token": token}.items() if v is not None}
    services, deadline = _services_with_deadline()
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    request = CallbackRequest(
        body=_raw_body(),
        headers=headers,
        query=query,
        received_at=time.time(),
        deadline=deadline,
        host=headers.get("host") or event.request_context.domain_name,
    )
    return _json(200, receive_callback(services, request))


_COPIES_QUEUED = "202: queued (queue mode); 200: copied in the request (inline mode)"
# One task (`taskId`) answers its status document; many (`taskIds`) answer the bulk document.
_COPIES_OK: OpenAPIResponse = {
    "description": f"{_COPIES_QUEUED}; the status document, or the bulk document for `taskIds`",
    "content": {content_types.APPLICATION_JSON: {"model": StatusDocument | BulkCopyDocument}},
}


@app.post(
    "/copies",
    summary="Copy a task's files, or record many tasks through record-info",
    responses=_answers((202, 200), _COPIES_QUEUED, 400, 403, 404, 413, 502, 503)
    | {202: _COPIES_OK, 200: _COPIES_OK},
    security=IAM,
)
def copies(
    request: Annotated[
        CopiesBody,
        Body(
            description="`taskId` (with `urls`, or `family` for record-info) for one task;"
            " `taskIds` and `family` for up to 50 tasks whose callbacks never arrived"
        ),
    ],
) -> Response[str]:
    """Copy the given URLs of a task, or every final file its family's record-info lists.

    In bulk (`taskIds`), each task is recorded through record-info on its own: the answer lists the
    status document of each task recorded, the ids kie.ai does not know, and the tasks not recorded,
    those that failed and those the function's time did not reach (not processed, retryable).
    """
    services, deadline = _services_with_deadline()
    if isinstance(request, BulkCopyRequest):
        document: BaseModel = request_bulk_copies(services, request, deadline)
    else:
        document = request_copies(services, request, deadline)
    return _json(202 if services.queue is not None else 200, document)


@app.get(
    "/tasks/<taskId>",
    summary="A task's status document",
    responses=_answers(200, "The status document", 400, 403, 404, 503),
    security=IAM,
)
def get_task(
    taskId: Annotated[str, Path(pattern=TASK_ID_REGEX)],
    filesFrom: Annotated[
        int,
        Query(
            ge=0,
            le=2**31,
            description="list the files from this index on (a document's `nextFilesFrom`, when"
            " `filesOmitted` says some files did not fit in it)",
        ),
    ] = 0,
) -> StatusDocument:
    """The status document of a task; 404 for a task kie2s3 has never seen.

    Its state is the whole task's; it lists the task's files from index `filesFrom` on, as many as
    fit one answer (Lambda carries at most 6 MB): `filesOmitted` and `nextFilesFrom` say what is left.
    """
    return status_document(get_services(), taskId, links=True, files_from=filesFrom)
