"""`POST /copies`: archive named URLs of a task, or everything kie.ai's record-info lists for it."""

from kie2s3.errors import BadRequestError, UpstreamError
from kie2s3.families import PARSERS, parser_for
from kie2s3.logic.plan import accept, refusal
from kie2s3.logic.services import Services
from kie2s3.logic.status import status_document
from kie2s3.media import kind_of
from kie2s3.models import CopyRequest, Outcome, ParsedCallback, SourceFile, StatusDocument
from kie2s3.observability import logger, tracer
from kie2s3.sources import canonical_url

# The family recorded for copies asked for by URL, when the caller names none.
DIRECT_FAMILY = "direct"


@tracer.capture_method(capture_response=False)
def request_copies(services: Services, request: CopyRequest, deadline: float | None = None) -> StatusDocument:
    """Plan (and in inline mode run) the copies; answer with the task's status document.

    With `urls`, every URL must pass the source policy as written (scheme, host, credentials,
    literal address): if any does not, BadRequestError lists each refused URL and its reason and
    nothing is recorded; what can only be judged later (DNS answers, download-url's verdict)
    becomes a `failed` file. Without,
    `family` names the record-info endpoint to ask; a task still running is recorded and nothing is
    copied yet (the reconciler or a later request completes it). Unknown family: BadRequestError;
    a task kie.ai does not know: NotFoundError.
    """
    logger.set_correlation_id(request.task_id)
    parser = parser_for(request.family, PARSERS) if request.family else None
    if request.family and parser is None and not (request.urls and request.family == DIRECT_FAMILY):
        known = ", ".join(sorted(p.name for p in PARSERS))
        raise BadRequestError(f"unknown family {request.family!r}; expected one of: {known}")
    if request.urls:
        refused = tuple(
            f"{canonical_url(url)}: {reason}"
            for url in dict.fromkeys(request.urls)
            if (reason := refusal(services.policy, url)) is not None
        )
        if refused:
            raise BadRequestError(
                "the source policy refuses some of these URLs; nothing was recorded", refused
            )
        files = tuple(SourceFile(url=u, kind=kind_of(u)) for u in dict.fromkeys(request.urls))
        parsed = ParsedCallback(
            task_id=request.task_id,
            family=parser.name if parser else DIRECT_FAMILY,
            outcome=Outcome.SUCCESS,
            files=files,
        )
    elif parser is None:
        raise BadRequestError("give `urls`, or the `family` whose record-info lists the task's files")
    else:
        record = services.kie.record_info(parser.record_info_path, request.task_id)
        try:
            parsed = parser.parse_record(request.task_id, record)
        except ValueError as exc:  # pydantic's ValidationError included
            raise UpstreamError(
                f"kie.ai's {parser.name} record of this task has an unexpected shape"
            ) from exc
    logger.info("copies requested", family=parsed.family, outcome=parsed.outcome, files=len(parsed.files))
    accept(services, parsed, deadline)
    return status_document(services, request.task_id)
