"""Pydantic models at every boundary: parsed callbacks, copy jobs, ledger items and status documents."""

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator
from pydantic.alias_generators import to_camel

# kie.ai task ids are hex, UUIDs or `task_<model>_<ms>`-like; the id becomes an S3 key segment,
# so nothing that could act as a path separator, a dot segment or a control character is accepted.
TASK_ID_REGEX = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
TASK_ID_PATTERN = re.compile(TASK_ID_REGEX)
# One task yields a handful of files (twelve for kie.ai's largest, a Suno stem split); a request
# naming more is a mistake, and a callback listing more has only its first ones planned. The cap
# counts distinct files (canonical sources: logic/plan.py `capped`), never list entries.
MAX_URLS_PER_REQUEST = 50
# A request may name one file several times (other query strings, other spellings), so its entries
# are bounded apart from the cap, at ten times it: judging them all stays a few milliseconds.
MAX_URL_ENTRIES_PER_REQUEST = 10 * MAX_URLS_PER_REQUEST
# The longest result URL kie2s3 archives from (kie.ai's are a few hundred characters). Longer, its file
# item (canonical source, up to 12 characters for each of the URL's, and the URL itself) could pass
# DynamoDB's 400 KB item limit; at this length 49 of them still fit one 4 MB transaction.
MAX_URL_CHARS = 4096

FileState = Literal["pending", "copying", "copied", "failed"]
TaskState = Literal["pending", "copying", "copied", "failed", "ignored"]
FileKind = Literal["image", "video", "audio", "file"]
# How a file was found: by its family's parser, or by the safety net over a known result part.
FoundBy = Literal["parser", "net"]


class Outcome(StrEnum):
    """What a callback says about its task."""

    SUCCESS = "success"  # final, with the files to archive (at least one)
    NO_FILES = "no_files"  # final, and without files by design (text, lyrics, MIDI notes, voice)
    FAILED = "failed"  # the task failed at kie.ai: nothing to copy
    NOT_FINAL = "not_final"  # an intermediate stage (e.g. Suno text/first): nothing to copy yet
    UNRECOGNISED = "unrecognised"  # no parser knows this shape: archived raw, kept for replay

    @property
    def final(self) -> bool:
        """Success, no files or failure: kie.ai is done with the task. A task's recorded outcome
        never goes from final back to not final (a late Suno `text` stage, an unrecognised shape)."""
        return self in (Outcome.SUCCESS, Outcome.NO_FILES, Outcome.FAILED)


class SourceFile(BaseModel):
    """One result file as kie.ai names it."""

    model_config = ConfigDict(frozen=True)

    url: str
    kind: FileKind
    found_by: FoundBy = "parser"


class ParsedCallback(BaseModel):
    """A callback reduced to what kie2s3 acts on: a success always names its files."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    family: str
    outcome: Outcome
    files: tuple[SourceFile, ...] = ()
    reason: str | None = None
    model: str | None = None  # Market's model name (`data.model`), when the result names one

    @model_validator(mode="after")
    def _success_has_files(self) -> "ParsedCallback":
        # A final result is never recorded done without its files: a success naming none is a
        # result without files by design (NO_FILES) or a shape kie2s3 does not know (UNRECOGNISED).
        if self.outcome is Outcome.SUCCESS and not self.files:
            raise ValueError("a successful result names at least one file")
        return self


class CopyJob(BaseModel):
    """One file to copy: the SQS message body, and the unit of idempotency (task_id + index)."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    index: int = Field(ge=0)
    source: str
    kind: FileKind
    family: str
    key: str
    # For the object's metadata and tags; jobs queued before it existed have none (the family is used).
    model: str | None = None


class ForwardJob(BaseModel):
    """One accepted callback to forward to FORWARD_URL: the forward queue's message body."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    raw_key: str  # the callback's body as kie.ai sent it, archived in S3
    arrived_at: float  # Unix seconds: the forward waits for the files at most until 15 minutes after
    # `Host` the callback arrived on (host[:port]): a target on that host would be kie2s3 itself.
    host: str | None = None
    wait_for_files: bool = False  # a result with files to archive: forwarded once they are settled


class TaskItem(BaseModel):
    """The ledger's record of a task (its files are separate items)."""

    task_id: str
    family: str
    outcome: Outcome
    reason: str | None = None
    file_count: int = 0
    files_not_planned: int = 0  # distinct sources past MAX_URLS_PER_REQUEST in one delivery: never archived
    model: str | None = None  # the first model a delivery named: kept, for keys and metadata
    taken_down_at: str | None = None  # make takedown: never recorded or archived again
    taken_down_keys: list[str] = Field(default_factory=list)  # the keys its files had (TAKEDOWN# items)
    created_at: str
    updated_at: str


class FileItem(BaseModel):
    """The ledger's record of one file of a task, identified within it by its canonical `source`.

    `index` is claimed when the item is created and never changes (idempotency is keyed on task id
    + index); `key` is computed then and stored. `source_url` is the full URL (query included) that
    a re-sent job needs: it is never shown by the API or logged. Items written before it existed
    lack it, and their jobs are re-sent from `source`.
    """

    task_id: str
    index: int
    source: str
    source_url: str | None = None
    found_by: FoundBy | None = None  # "net" for a file the safety net found
    kind: FileKind
    key: str
    state: FileState = "pending"
    bucket: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    content_type: str | None = None
    error: str | None = None
    source_unstable: bool = False  # copied from one plain GET: its bytes changed between requests
    updated_at: str


class CopyResult(BaseModel):
    """What a finished copy stored.

    `source_unstable`: the source answered another version between the requests of a ranged
    download, so the bytes are what one plain GET served (transfer/run.py). Records from before
    the field existed read as False.
    """

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    bytes: int
    sha256: str
    content_type: str
    source_unstable: bool = False


class TransferResult(CopyResult):
    """A finished transfer, as the idempotency record keeps it for the deliveries that follow.

    `tagged`: the object carries every tag already (a single PUT sends them with the bytes); a
    multipart upload's tags are written after it, since its digest is known only at the end.
    Records from before the field existed read as untagged: the tags are written again.
    """

    tagged: bool = False


# What the idempotency guard made of a copy: the transfer `ran` in this call and its success is
# recorded; it ran but its success is `unrecorded` (the record's write failed, its in-progress lock
# stays until it expires); an earlier delivery's result was `repeated` from the record; or another
# delivery holds the file now (`busy`), and nothing ran.
GuardOutcome = Literal["ran", "unrecorded", "repeated", "busy", "taken_down"]


@dataclass(frozen=True)
class Guarded:
    """A guarded copy's outcome and, unless `busy` or `taken_down`, its transfer's result."""

    outcome: GuardOutcome
    result: TransferResult | None = None


@dataclass(frozen=True)
class SourceVersion:
    """The version of a source a ranged download is pinned to, as its opening response declared it."""

    total: int  # bytes of the whole file
    if_range: str  # sent as If-Range with every later range: the strong ETag, else Last-Modified
    etag: str | None
    last_modified: str | None


class _Document(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


DIRECT_FAMILY = "direct"  # the family recorded for copies asked for by URL when the caller names none


class CopyRequest(_Document):
    """The body of `POST /copies`: copy these URLs, or (without `urls`) what record-info lists."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
    )

    task_id: Annotated[str, Field(pattern=TASK_ID_REGEX, description="kie.ai task id")]
    family: Annotated[
        str | None,
        Field(
            max_length=32,
            description="kie.ai family, needed without urls (one with a record-info endpoint then)",
        ),
    ] = None
    urls: Annotated[
        list[Annotated[str, Field(max_length=MAX_URL_CHARS)]] | None,
        Field(
            min_length=1,
            max_length=MAX_URL_ENTRIES_PER_REQUEST,
            description=f"result URLs to copy: at most {MAX_URLS_PER_REQUEST} distinct files (query strings"
            " and spellings of one file count once)",
        ),
    ] = None


def _distinct(task_ids: list[str]) -> list[str]:
    distinct = list(dict.fromkeys(task_ids))
    if len(distinct) > MAX_URLS_PER_REQUEST:
        raise ValueError(f"at most {MAX_URLS_PER_REQUEST} distinct task ids, not {len(distinct)}")
    return distinct


class BulkCopyRequest(_Document):
    """The bulk body of `POST /copies`: record each task as its family's record-info describes it.

    For tasks whose callbacks never arrived. As many ids as URLs in one request; duplicates count once.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    task_ids: Annotated[
        list[Annotated[str, Field(pattern=TASK_ID_REGEX)]],
        Field(
            min_length=1,
            max_length=MAX_URL_ENTRIES_PER_REQUEST,
            description=f"kie.ai task ids: at most {MAX_URLS_PER_REQUEST} distinct ones (duplicates count once)",
        ),
        AfterValidator(_distinct),
    ]
    family: Annotated[
        str,
        Field(
            max_length=32,
            description="kie.ai family whose record-info knows the tasks",
        ),
    ]

    @model_validator(mode="before")
    @classmethod
    def _one_form(cls, data: Any) -> Any:
        if isinstance(data, dict) and ({"taskId", "task_id", "urls"} & data.keys()):
            raise ValueError("give either `taskIds` (bulk, by record-info) or `taskId` (one task), not both")
        return data


# What `POST /copies` answers a body that takes neither form (`{}`, `{"urls": [...]}`, a list).
COPIES_FORMS = "give taskId with urls (or with family), or taskIds with family"


def _copies_form(body: Any) -> str | None:
    """Which form a `POST /copies` body takes: `bulk` when it names `taskIds`, `task` when it names
    `taskId`; None (COPIES_FORMS) when it names neither."""
    if isinstance(body, BulkCopyRequest):
        return "bulk"
    if isinstance(body, CopyRequest):
        return "task"
    if not isinstance(body, dict):
        return None
    if "taskIds" in body or "task_ids" in body:
        return "bulk"
    return "task" if "taskId" in body or "task_id" in body else None


# The body of `POST /copies`: one task (`taskId`, by URLs or record-info) or many (`taskIds`). The
# discriminator picks the form from the body, so a bad body is reported against that form alone.
# The tags name the forms inside pydantic's error locations, never in what a caller is told.
COPIES_TAGS = frozenset({"task", "bulk"})
CopiesBody = Annotated[
    Annotated[CopyRequest, Tag("task")] | Annotated[BulkCopyRequest, Tag("bulk")],
    Discriminator(_copies_form, custom_error_type="copies_form", custom_error_message=COPIES_FORMS),
]


class FileStatus(_Document):
    """One file in the status document (design.md, `GET /tasks/{taskId}`)."""

    index: int
    source: str
    state: FileState
    bucket: str | None = None
    key: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    content_type: str | None = None
    error: str | None = None
    source_unstable: bool = Field(
        default=False,
        description=(
            "true when the source served different bytes between requests of one download: the"
            " archived bytes (and sha256) are what one plain GET served"
        ),
    )
    # `GET /tasks` only, for a copied file: a presigned GET of the object, and when it stops working.
    url: str | None = None
    url_expires_at: str | None = None


# Lambda carries at most 6 MB of a synchronous invocation's answer (6,291,556 bytes; more fails the
# invocation as Function.ResponseSizeTooLarge, which API Gateway answers 502: Lambda's Invoke API
# reference, docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html). Every answer kie2s3 builds keeps
# within this many bytes of that payload, leaving the rest for its envelope (status, headers).
MAX_ANSWER_BYTES = 6 * 1024 * 1024 - 64 * 1024


def _absent(value: object) -> bool:
    return value is None


class StatusDocument(_Document):
    """The status document of a task, as `GET /tasks/{taskId}` and `POST /copies` answer it.

    `files` are the task's files that fit in one answer, in index order; when some do not,
    `filesOmitted` counts them and `nextFilesFrom` is the `filesFrom` that lists them.
    """

    task_id: str
    family: str
    state: TaskState
    reason: str | None = None
    files: list[FileStatus] = Field(default_factory=list)
    files_omitted: int | None = Field(
        default=None,
        ge=1,
        exclude_if=_absent,
        description="present only when some of the task's files (those after the files listed) did"
        " not fit in one answer (Lambda carries at most 6 MB): how many were left out",
    )
    next_files_from: int | None = Field(
        default=None,
        ge=0,
        exclude_if=_absent,
        description="present with filesOmitted: the index to ask `GET /tasks/{taskId}?filesFrom=` for,"
        " which lists the files left out",
    )


# The `source` of every event kie2s3 puts on EventBridge (design.md, Contract additions).
EVENT_SOURCE = "kie2s3"


class BusEvent(BaseModel):
    """One event for EventBridge: its detail-type and its detail, a JSON object holding `dedupeId`."""

    model_config = ConfigDict(frozen=True)

    detail_type: str
    dedupe_id: str
    detail: str  # JSON text, as PutEvents takes it
    trimmed: bool = False  # parts of it were left out to fit PutEvents' size limit (logic/outbox.py)


class BulkCopyError(_Document):
    """A task of a bulk request that was not recorded; `retryable`: sending it again may work.

    `processed` false: the request's time ran out before the task was reached; kie.ai was not asked
    and nothing was recorded for it, and it is always retryable.
    """

    task_id: str
    message: str
    retryable: bool
    processed: bool = Field(
        description="false: not reached before the request's time ran out (nothing asked or recorded;"
        " always retryable: send it again)"
    )

    @model_validator(mode="after")
    def _unprocessed_is_retryable(self) -> "BulkCopyError":
        if not self.processed and not self.retryable:
            raise ValueError("a task not processed is always retryable")
        return self


class BulkCopyDocument(_Document):
    """The answer to a bulk `POST /copies`: a verdict for every task id of the request, each in one
    list: recorded (`tasks`), unknown to record-info (`unknown`), or not recorded (`errors`)."""

    tasks: list[StatusDocument] = Field(
        description="the status document of each task recorded, in request order"
    )
    unknown: list[str] = Field(description="task ids kie.ai's record-info does not know: nothing recorded")
    errors: list[BulkCopyError] = Field(
        description="tasks not recorded, in request order: kie.ai refused or failed to answer"
        " (`processed` true), or the request's time ran out before them (`processed` false)"
    )
