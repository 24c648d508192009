"""`POST /copies`: archive named URLs of a task, or everything kie.ai's record-info lists for tasks."""

import time
from collections.abc import Sequence

from kie2s3.errors import BadRequestError, Kie2S3Error, NotFoundError, UpstreamError
from kie2s3.families import PARSERS, UNKNOWN, FamilyParser, parser_for
from kie2s3.logic.plan import accept, capped, refusal
from kie2s3.logic.services import Services
from kie2s3.logic.status import answer_bytes, fitted, status_document
from kie2s3.media import kind_of
from kie2s3.models import (
    DIRECT_FAMILY,
    MAX_ANSWER_BYTES,
    MAX_URLS_PER_REQUEST,
    BulkCopyDocument,
    BulkCopyError,
    BulkCopyRequest,
    CopyRequest,
    Outcome,
    ParsedCallback,
    SourceFile,
    StatusDocument,
)
from kie2s3.observability import logger, tracer
from kie2s3.sources import canonical_url

# A bulk task the request's time did not reach: kie.ai was not asked, nothing was recorded.
NOT_PROCESSED = "not processed: too little of the request's time was left to ask kie.ai; send it again"


@tracer.capture_method(capture_response=False)
def request_copies(services: Services, request: CopyRequest, deadline: float | None = None) -> StatusDocument:
    """Plan (and in inline mode run) the copies; answer with the task's status document.

    With `urls`, they may name at most MAX_URLS_PER_REQUEST distinct files (the cap callbacks have,
    `capped`: a file named twice counts once), and every URL must pass the source policy as written
    (scheme, host, credentials, literal address): otherwise BadRequestError says how many files are
    past the cap, or lists each refused URL and its reason, and nothing is recorded; what can only
    be judged later (DNS answers, download-url's verdict) becomes a `failed` file. Without,
    `family` names the record-info endpoint to ask; a task still running is recorded and nothing is
    copied yet (the reconciler or a later request completes it). Unknown family: BadRequestError;
    a task kie.ai does not know: NotFoundError.
    """
    logger.set_correlation_id(request.task_id)
    parser = parser_for(request.family, PARSERS) if request.family else None
    if request.family and parser is None and not (request.urls and request.family == DIRECT_FAMILY):
        raise _unknown_family(request.family)
    if not request.urls:
        if parser is None:
            raise BadRequestError("give `urls`, or the `family` whose record-info lists the task's files")
        return copy_from_record_info(services, _with_record_info(parser), request.task_id, deadline)
    files = _named_files(services, request.urls)
    parsed = ParsedCallback(
        task_id=request.task_id,
        family=parser.name if parser else _recorded_family(services, request.task_id),
        outcome=Outcome.SUCCESS,
        files=files,
    )
    return _record(services, parsed, deadline)


def _named_files(services: Services, urls: Sequence[str]) -> tuple[SourceFile, ...]:
    """The files the URLs name, once each; BadRequestError when they name more distinct files than
    the cap, or when the source policy refuses any as written (each listed with its reason)."""
    files = tuple(SourceFile(url=u, kind=kind_of(u)) for u in dict.fromkeys(urls))
    _, past = capped(files)
    if past:
        raise BadRequestError(
            f"these URLs name {MAX_URLS_PER_REQUEST + past} distinct files (query strings and spellings"
            f" of one file count once); at most {MAX_URLS_PER_REQUEST} per request: {past} past the cap,"
            " nothing was recorded"
        )
    refused = tuple(
        f"{canonical_url(f.url)}: {reason}"
        for f in files
        if (reason := refusal(services.policy, f.url)) is not None
    )
    if refused:
        raise BadRequestError("the source policy refuses some of these URLs; nothing was recorded", refused)
    return files


def _recorded_family(services: Services, task_id: str) -> str:
    """The family the ledger knows the task by (a callback named it), else DIRECT_FAMILY: a request
    that names no family never relabels a known task (its keys and reconciler use the family)."""
    found = services.ledger.get(task_id)
    return found[0].family if found and found[0].family != UNKNOWN else DIRECT_FAMILY


@tracer.capture_method(capture_response=False)
def request_bulk_copies(
    services: Services, request: BulkCopyRequest, deadline: float | None = None
) -> BulkCopyDocument:
    """Record each task as its family's record-info describes it, one after the other, in order.

    For tasks whose callbacks never arrived. Each task goes the way `request_copies` takes one
    without `urls`: finished ones have their copies planned (queued, or run in inline mode),
    running ones are recorded and copy nothing yet. What one task meets stays with it: a task
    kie.ai does not know is listed in `unknown`, one it refuses or fails to answer in `errors`, with
    whether sending it again may work. Planned against `deadline` (time.monotonic()): a task is
    started only while one record-info call's worst case and the bulk reserve are left (_time_for_one),
    so the answer comes within the invocation, the ids not reached in `errors` as not processed and
    retryable. Unknown family: BadRequestError, and nothing is asked.
    """
    parser = record_info_parser(request.family)
    tasks: list[StatusDocument] = []
    unknown: list[str] = []
    errors: list[BulkCopyError] = []
    for position, task_id in enumerate(request.task_ids):
        if not _time_for_one(services, deadline):
            unreached = request.task_ids[position:]
            logger.warning("bulk copies out of time", not_processed=len(unreached))
            errors.extend(
                BulkCopyError(task_id=t, message=NOT_PROCESSED, retryable=True, processed=False)
                for t in unreached
            )
            break
        logger.set_correlation_id(task_id)
        try:
            tasks.append(copy_from_record_info(services, parser, task_id, deadline))
        except NotFoundError:
            unknown.append(task_id)
        except Kie2S3Error as exc:
            logger.warning("bulk copy not recorded", reason=exc.reason, retryable=exc.retryable)
            errors.append(
                BulkCopyError(task_id=task_id, message=exc.reason, retryable=exc.retryable, processed=True)
            )
    logger.set_correlation_id(None)
    logger.info(
        "bulk copies requested",
        family=parser.name,
        recorded=len(tasks),
        unknown=len(unknown),
        errors=len(errors),
    )
    return fitted_bulk(BulkCopyDocument(tasks=tasks, unknown=unknown, errors=errors), MAX_ANSWER_BYTES)


def fitted_bulk(whole: BulkCopyDocument, budget: int) -> BulkCopyDocument:
    """The bulk answer within `budget` bytes (status.answer_bytes): every task keeps its document,
    and the files that do not fit are left out of the last ones (each says how many, and from
    which index `GET /tasks/{taskId}?filesFrom=` lists them).

    Each task is first given its document without files (`fitted` to nothing); what the budget has
    left goes to the tasks' files, in request order.
    """
    if answer_bytes(whole) <= budget:
        return whole
    least = [fitted(task, 0) for task in whole.tasks]
    spare = budget - answer_bytes(whole.model_copy(update={"tasks": least})) - 1
    tasks = []
    for task, smallest in zip(whole.tasks, least, strict=True):
        floor = answer_bytes(smallest)
        shown = fitted(task, floor + max(spare, 0))
        spare -= answer_bytes(shown) - floor
        tasks.append(shown)
    return whole.model_copy(update={"tasks": tasks})


def _time_for_one(services: Services, deadline: float | None) -> bool:
    """Whether one more task fits before `deadline`: its record-info call at its worst (the kie
    client's connect + read timeouts), then recording it and answering (the bulk reserve)."""
    if deadline is None:
        return True
    needed = services.kie.worst_case_seconds + services.bulk.reserve_seconds
    return deadline - time.monotonic() >= needed


def copy_from_record_info(
    services: Services, parser: FamilyParser, task_id: str, deadline: float | None = None
) -> StatusDocument:
    """Record one task as `parser`'s record-info endpoint describes it; its status document.

    NotFoundError when kie.ai has no record of it; UpstreamError when the record has a shape the
    parser cannot read or kie.ai refuses the request; RetryableError for passing faults.
    """
    record = services.kie.record_info(parser.record_info_path, task_id)
    try:
        parsed = parser.parse_record(task_id, record)
    except ValueError as exc:  # pydantic's ValidationError included
        raise UpstreamError(f"kie.ai's {parser.name} record of this task has an unexpected shape") from exc
    return _record(services, parsed, deadline)


def _record(services: Services, parsed: ParsedCallback, deadline: float | None) -> StatusDocument:
    logger.info("copies requested", family=parsed.family, outcome=parsed.outcome, files=len(parsed.files))
    accept(services, parsed, deadline)
    return status_document(services, parsed.task_id)


def record_info_parser(family: str) -> FamilyParser:
    """The parser of `family`, whose record-info endpoint knows its tasks (the bulk form's and `make
    backfill`'s check, before anything is asked); BadRequestError for an unknown family or one without."""
    parser = parser_for(family, PARSERS)
    if parser is None:
        raise _unknown_family(family)
    return _with_record_info(parser)


def _unknown_family(family: str) -> BadRequestError:
    known = ", ".join(sorted(p.name for p in PARSERS))
    return BadRequestError(f"unknown family {family!r}; expected one of: {known}")


def _with_record_info(parser: FamilyParser) -> FamilyParser:
    if not parser.record_info_path:
        raise BadRequestError(f"family {parser.name!r} has no record-info endpoint: give `urls`")
    return parser
