"""A task's status document, with its state derived from its files (never stored, so it cannot drift)."""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from kie2s3.errors import NotFoundError
from kie2s3.logic.services import Services
from kie2s3.models import (
    MAX_URLS_PER_REQUEST,
    FileItem,
    FileStatus,
    Outcome,
    StatusDocument,
    TaskItem,
    TaskState,
)


def task_state(task: TaskItem, files: Sequence[FileItem]) -> TaskState:
    """From kie.ai's outcome, then from the files' states (design.md's table of task states).

    `copied` needs at least one file, every one copied: a task without files is never `copied`.
    """
    if task.taken_down_at:
        return "ignored"
    if task.outcome is Outcome.FAILED:
        return "failed"
    if task.outcome is Outcome.NOT_FINAL:
        return "pending"
    if task.outcome in (Outcome.UNRECOGNISED, Outcome.NO_FILES) or not files:
        return "ignored"
    states = {f.state for f in files}
    if states <= {"copied"} and not task.files_not_planned:
        return "copied"
    if states <= {"copied", "failed"}:
        return "failed"
    if states & {"copying", "copied"}:
        return "copying"
    return "pending"


def _not_planned(task: TaskItem) -> str | None:
    if not task.files_not_planned:
        return None
    return (
        f"{task.files_not_planned} files past the first {MAX_URLS_PER_REQUEST} of one callback"
        " were not archived"
    )


def file_status(item: FileItem) -> FileStatus:
    """A file as the status document shows it: never its full source URL, and no link."""
    return FileStatus.model_validate(item.model_dump(include=set(FileStatus.model_fields)))


def _file_status(services: Services, item: FileItem, links: bool) -> FileStatus:
    """A file as the status document shows it, with a presigned GET of the object when `links` and
    PRESIGNED_URL_TTL_SECONDS allow and the file is copied."""
    status = file_status(item)
    ttl = services.settings.presigned_url_ttl_seconds
    if not (links and ttl and item.state == "copied" and item.key and item.bucket == services.store.bucket):
        return status
    expires = datetime.now(UTC) + timedelta(seconds=ttl)
    return status.model_copy(
        update={
            "url": services.store.presigned_get(item.key, ttl),
            "url_expires_at": expires.isoformat(timespec="seconds"),
        }
    )


def _with_copies_under_way(services: Services, task_id: str, files: list[FileItem]) -> list[FileItem]:
    """The files, each `pending` one whose copy has begun shown `copying`.

    The ledger records a copy only once it is done (`copied`): a copy under way is known by the
    record that already exists for it, its idempotency record (in progress and not expired, or
    completed with its `copied` still to be written). One read of those records, and none when
    no file is pending. Items an older version left `copying` read as they are.
    """
    pending = [f.index for f in files if f.state == "pending"]
    if not pending:
        return files
    copying = services.guard.copying(task_id, pending)
    return [f.model_copy(update={"state": "copying"}) if f.index in copying else f for f in files]


def status_document(
    services: Services, task_id: str, *, links: bool = False, under_way: bool = True
) -> StatusDocument:
    """The status document of a task; NotFoundError for a task the ledger has never seen.

    `links` adds each copied file's presigned `url` (for `GET /tasks` only: a callback's answer
    goes back to kie.ai, and events must not carry links that differ at every signing).
    `under_way` shows a pending file whose copy has begun as `copying` (one read of the copies'
    records); without it the document is the ledger's alone, as a callback's answer is: kie.ai reads
    nothing of it, and its acknowledgment waits for no read it does not need.
    """
    found = services.ledger.get(task_id)
    if found is None:
        raise NotFoundError(f"unknown task {task_id!r}")
    task, files = found
    if under_way:
        files = _with_copies_under_way(services, task_id, files)
    return document(task, files, lambda f: _file_status(services, f, links))


def document(
    task: TaskItem,
    files: Sequence[FileItem],
    show: Callable[[FileItem], FileStatus] = file_status,
) -> StatusDocument:
    """The status document of a task the ledger holds, each file shown by `show` (no links by default).

    A task taken down shows no files, whether or not its takedown has removed their items yet: its
    document (and the `Task Ignored` event made of it) is the same whenever it is read.
    """
    if task.taken_down_at:
        files = []
    return StatusDocument(
        task_id=task.task_id,
        family=task.family,
        state=task_state(task, files),
        reason=task.reason or _not_planned(task),
        files=[show(f) for f in files],
    )
