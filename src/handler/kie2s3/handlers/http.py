"""The HTTP API routes (payload 2.0): each parses its input, calls one use case, returns a model."""

import base64
import binascii
import time
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import BaseModel

from kie2s3.errors import BadRequestError, Kie2S3Error
from kie2s3.handlers.wiring import get_services
from kie2s3.logic.receive import CallbackRequest, receive_callback
from kie2s3.logic.status import status_document
from kie2s3.models import StatusDocument
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


def _raw_body() -> bytes:
    event = app.current_event
    body = event.body or ""
    if not event.is_base64_encoded:
        return body.encode()
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequestError("body is not valid base64") from exc


@app.post("/callbacks/kie")
def callback() -> Response[str]:
    """A kie.ai task callback: 200 when accepted or deliberately ignored, 401 when not authentic."""
    event = app.current_event
    request = CallbackRequest(
        body=_raw_body(),
        headers={k.lower(): v for k, v in (event.headers or {}).items()},
        query=dict(event.query_string_parameters or {}),
        received_at=time.time(),
    )
    return _json(200, receive_callback(get_services(), request))


@app.get("/tasks/<task_id>")
def get_task(task_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")]) -> StatusDocument:
    """The status document of a task; 404 for a task kie2s3 has never seen."""
    return status_document(get_services(), task_id)
