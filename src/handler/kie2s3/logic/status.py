"""A task's status document, with its state derived from its files (never stored, so it cannot drift)."""

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from kie2s3.errors import NotFoundError
from kie2s3.logic.services import Services
from kie2s3.models import (
    MAX_ANSWER_BYTES,
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
    services: Services,
    task_id: str,
    *,
    links: bool = False,
    under_way: bool = True,
    files_from: int = 0,
    budget: int = MAX_ANSWER_BYTES,
) -> StatusDocument:
    """The status document of a task; NotFoundError for a task the ledger has never seen.

    `links` adds each copied file's presigned `url` (for `GET /tasks` only: a callback's answer
    goes back to kie.ai, and events must not carry links that differ at every signing).
    `under_way` shows a pending file whose copy has begun as `copying` (one read of the copies'
    records); without it the document is the ledger's alone, as a callback's answer is: kie.ai reads
    nothing of it, and its acknowledgment waits for no read it does not need.
    The state is the whole task's; the files listed are those from index `files_from` on that fit
    `budget` bytes of answer, one at least (`fitted`).
    """
    found = services.ledger.get(task_id)
    if found is None:
        raise NotFoundError(f"unknown task {task_id!r}")
    task, files = found
    if under_way:
        files = _with_copies_under_way(services, task_id, files)
    whole = document(
        task, files, lambda f: _file_status(services, f, links) if f.index >= files_from else None
    )
    return fitted(whole, budget, least=1)


def document(
    task: TaskItem,
    files: Sequence[FileItem],
    show: Callable[[FileItem], FileStatus | None] = file_status,
) -> StatusDocument:
    """The status document of a task the ledger holds, each file shown by `show` (no links by
    default; a file it shows as None is not listed), whatever its size (see `fitted`).

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
        files=[shown for f in files if (shown := show(f)) is not None],
    )


def answer_bytes(part: BaseModel) -> int:
    """The bytes a part of an answer costs in Lambda's response payload, at most: its compact JSON
    (ASCII-escaped, as Powertools serialises a route's model), again escaped as the payload's `body`
    string holds it. A list of parts costs the sum of theirs, plus a comma between two."""
    text = json.dumps(part.model_dump(mode="json", by_alias=True), separators=(",", ":"))
    return len(json.dumps(text)) - 2


# A reason longer than this is cut (with `…`) where even a document without files would not fit.
SHORT_REASON_CHARS = 1024


def fitted(whole: StatusDocument, budget: int, *, least: int = 0) -> StatusDocument:
    """The document with the first of its files whose answer fits `budget` bytes (answer_bytes);
    `filesOmitted` counts the files left out after them, `nextFilesFrom` is the first one's index
    (a document already fitted to a larger budget keeps counting those it left out).

    `least` files are listed whatever the budget (a page of `GET /tasks` lists one at least, so that
    paging always moves on: one file item is at most DynamoDB's 400 KB). Should the document not fit
    even without files, its reason is cut to SHORT_REASON_CHARS.
    """
    if answer_bytes(whole) <= budget:
        return whole
    files, before = whole.files, whole.files_omitted or 0  # already left out after these files
    markers = {
        "files_omitted": len(files) + before or None,
        "next_files_from": files[-1].index if files else whole.next_files_from,  # as long as any
    }
    used = answer_bytes(whole.model_copy(update={"files": [], **markers}))
    if used > budget and whole.reason and len(whole.reason) > SHORT_REASON_CHARS:
        whole = whole.model_copy(update={"reason": whole.reason[:SHORT_REASON_CHARS] + "…"})
        used = answer_bytes(whole.model_copy(update={"files": [], **markers}))
    count = 0
    for file in files:
        used += answer_bytes(file) + 1
        if used > budget and count >= least:
            break
        count += 1
    if count == len(files):
        return whole
    omitted = files[count:]
    return whole.model_copy(
        update={
            "files": files[:count],
            "files_omitted": len(omitted) + before,
            "next_files_from": omitted[0].index,
        }
    )
