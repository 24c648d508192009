"""The HTTP API routes (payload 2.0): each parses its input, calls one use case, returns a model."""

import base64
import binascii
import time
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel

from kie2s3.errors import BadRequestError, Kie2S3Error
from kie2s3.handlers.wiring import get_services
from kie2s3.logic.copies import request_copies
from kie2s3.logic.receive import CallbackRequest, receive_callback
from kie2s3.logic.services import Services
from kie2s3.logic.status import status_document
from kie2s3.models import TASK_ID_REGEX, CopyRequest, StatusDocument
from kie2s3.observability import logger

app = APIGatewayHttpResolver(enable_validation=True)


def _json(status: int, model: BaseModel) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=model.model_dump_json(by_alias=True),
    )


class ErrorDocument(BaseModel):
    """The body of every 4xx/5xx kie2s3 answers on purpose."""

    message: str
    details: list[str] = []


@app.exception_handler(Kie2S3Error)  # type: ignore[untyped-decorator]  # Powertools leaves it untyped
def _known_error(exc: Kie2S3Error) -> Response[str]:
    if exc.status >= 500:
        logger.exception("request failed", reason=exc.reason)
    return _json(exc.status, ErrorDocument(message=exc.reason))


@app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
def _invalid_request(exc: RequestValidationError) -> Response[str]:
    details = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
    return _json(400, ErrorDocument(message="invalid request", details=details))


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
        return body.encode()
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequestError("body is not valid base64") from exc


# Deployed, these routes are IAM-authorised at the gateway (SigV4-signed requests).
IAM: list[dict[str, list[str]]] = [{"sigv4": []}]
_ERRORS: dict[int, OpenAPIResponse] = {
    400: {"description": "Invalid request: the reasons are in `message` and `details`"},
    502: {"description": "kie.ai answered something unusable"},
    503: {"description": "A passing fault (AWS or kie.ai): retry"},
}


def _answers(ok: int, description: str, *extra: int) -> dict[int, OpenAPIResponse]:
    descriptions = {401: "Signature or token missing, wrong or stale", 404: "Unknown task"}
    return {
        ok: {"description": description},
        **_ERRORS,
        **{c: {"description": descriptions[c]} for c in extra},
    }


@app.post(
    "/callbacks/kie",
    summary="kie.ai task callback (any family)",
    responses=_answers(200, "Accepted or deliberately ignored; the task's status document", 401),
)
def callback(
    family: Annotated[
        str | None, Query(max_length=32, description="family hint for ambiguous shapes")
    ] = None,
    token: Annotated[str | None, Query(max_length=256, description="callback token when HMAC is off")] = None,
) -> Response[str]:
    """A kie.ai task callback, authenticated by kie.ai's webhook HMAC headers or the callback token."""
    event = app.current_event
    query = {k: v for k, v in {"family": family, "token": token}.items() if v is not None}
    services, deadline = _services_with_deadline()
    request = CallbackRequest(
        body=_raw_body(),
        headers={k.lower(): v for k, v in (event.headers or {}).items()},
        query=query,
        received_at=time.time(),
        deadline=deadline,
    )
    return _json(200, receive_callback(services, request))


@app.post(
    "/copies",
    summary="Copy a task's files",
    responses=_answers(202, "Queued (queue mode; 200 when copied in the request, inline mode)", 404),
    security=IAM,
)
def copies(request: Annotated[CopyRequest, Body()]) -> Response[str]:
    """Copy the given URLs of a task, or every final file its family's record-info lists."""
    services, deadline = _services_with_deadline()
    document = request_copies(services, request, deadline)
    return _json(202 if services.settings.copy_mode == "queue" else 200, document)


@app.get(
    "/tasks/<taskId>",
    summary="A task's status document",
    responses=_answers(200, "The status document", 404),
)
def get_task(taskId: Annotated[str, Path(pattern=TASK_ID_REGEX)]) -> StatusDocument:
    """The status document of a task; 404 for a task kie2s3 has never seen."""
    return status_document(get_services(), taskId)
