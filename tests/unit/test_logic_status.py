"""The status document over the in-memory ledger: every row of design.md's table of task states, and
what each file shows (never its full URL; a link only to a copied object of this bucket)."""

from datetime import UTC, datetime, timedelta

import pytest
from tests.fakes import BUCKET, Fakes, make_fakes

from kie2s3.errors import NotFoundError
from kie2s3.logic.status import status_document
from kie2s3.models import MAX_URLS_PER_REQUEST, FileItem, FileState, Outcome, TaskItem

TASK = "3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b"
SOURCE = "https://tempfile.aiquickdraw.com/p/a.png"


@pytest.fixture
def fakes() -> Fakes:
    return make_fakes()


def _record(
    fakes: Fakes, outcome: Outcome, *states: FileState, reason: str | None = None, not_planned: int = 0
) -> None:
    fakes.ledger.tasks[TASK] = TaskItem(
        task_id=TASK,
        family="market",
        outcome=outcome,
        reason=reason,
        file_count=len(states),
        files_not_planned=not_planned,
        created_at="2026-11-24T12:00:00.000+00:00",
        updated_at="2026-11-24T12:00:00.000+00:00",
    )
    for index, state in enumerate(states):
        fakes.ledger.seed_file(_item(index, state))


def _item(index: int, state: FileState, **fields: object) -> FileItem:
    copied = state == "copied"
    return FileItem.model_validate(
        {
            "task_id": TASK,
            "index": index,
            "source": f"{SOURCE[:-4]}{index}.png",
            "source_url": f"{SOURCE[:-4]}{index}.png?X-Amz-Signature=secret",
            "kind": "image",
            "key": f"kie/{TASK}/{index:02d}.png",
            "state": state,
            "bucket": BUCKET,
            "bytes": 10 if copied else None,
            "sha256": "ab" * 32 if copied else None,
            "content_type": "image/png" if copied else None,
            "error": "gone (HTTP 404)" if state == "failed" else None,
            "updated_at": "2026-11-24T12:00:00.000+00:00",
            **fields,
        }
    )


# design.md, Contract additions, Task states: one case per meaning of each state.
STATES_TABLE = [
    # pending: files waiting to be copied, or the task waiting for a later stage at kie.ai
    ("pending", Outcome.SUCCESS, ("pending",)),
    ("pending", Outcome.SUCCESS, ("pending", "failed")),  # one failed, one still to copy
    ("pending", Outcome.NOT_FINAL, ()),
    # copying: at least one file being copied (or some copied and others still to copy)
    ("copying", Outcome.SUCCESS, ("copying", "pending")),
    ("copying", Outcome.SUCCESS, ("copied", "pending")),
    ("copying", Outcome.SUCCESS, ("copied", "copying", "failed")),
    # copied: every file copied, at least one
    ("copied", Outcome.SUCCESS, ("copied",)),
    ("copied", Outcome.SUCCESS, ("copied", "copied", "copied")),
    # failed: at kie.ai, or files failed permanently and none remains to copy
    ("failed", Outcome.FAILED, ()),
    ("failed", Outcome.SUCCESS, ("failed",)),
    ("failed", Outcome.SUCCESS, ("copied", "failed")),
    # ignored: a result without files by design, or a shape no parser knows
    ("ignored", Outcome.NO_FILES, ()),
    ("ignored", Outcome.UNRECOGNISED, ()),
    ("ignored", Outcome.SUCCESS, ()),  # never `copied` without a file
]


@pytest.mark.parametrize(
    ("state", "outcome", "files"),
    STATES_TABLE,
    ids=[f"{s}-{o.value}-{'+'.join(f) or 'no-files'}" for s, o, f in STATES_TABLE],
)
def test_status_task_state_table(
    fakes: Fakes, state: str, outcome: Outcome, files: tuple[FileState, ...]
) -> None:
    _record(fakes, outcome, *files)
    doc = status_document(fakes.services, TASK)
    assert doc.state == state
    assert [f.state for f in doc.files] == list(files)


def test_status_state_table_covers_every_state() -> None:
    assert {row[0] for row in STATES_TABLE} == {"pending", "copying", "copied", "failed", "ignored"}


def test_status_every_file_copied_but_some_never_planned_is_failed_and_says_why(fakes: Fakes) -> None:
    _record(fakes, Outcome.SUCCESS, "copied", not_planned=3)
    doc = status_document(fakes.services, TASK)
    assert doc.state == "failed"
    assert doc.reason == f"3 files past the first {MAX_URLS_PER_REQUEST} of one callback were not archived"


def test_status_reason_recorded_wins_over_the_count_not_planned(fakes: Fakes) -> None:
    _record(fakes, Outcome.NOT_FINAL, reason="waiting for the complete stage (first)", not_planned=3)
    assert status_document(fakes.services, TASK).reason == "waiting for the complete stage (first)"


def test_status_task_taken_down_is_ignored_whatever_its_files(fakes: Fakes) -> None:
    _record(fakes, Outcome.SUCCESS, "copied", "pending")
    fakes.ledger.mark_taken_down(TASK, [f"kie/{TASK}/00.png"])
    doc = status_document(fakes.services, TASK)
    assert (doc.state, doc.reason) == ("ignored", fakes.ledger.tasks[TASK].reason)
    assert doc.reason is not None
    assert "taken down" in doc.reason


def test_status_unknown_task_is_not_found(fakes: Fakes) -> None:
    with pytest.raises(NotFoundError, match=TASK):
        status_document(fakes.services, TASK)


# -- the files -------------------------------------------------------------------------------------------


def test_status_files_are_shown_by_canonical_source_without_the_full_url(fakes: Fakes) -> None:
    _record(fakes, Outcome.SUCCESS, "copied", "failed")

    doc = status_document(fakes.services, TASK).model_dump(by_alias=True, exclude_none=True)

    assert doc["files"] == [
        {
            "index": 0,
            "source": f"{SOURCE[:-4]}0.png",
            "state": "copied",
            "bucket": BUCKET,
            "key": f"kie/{TASK}/00.png",
            "bytes": 10,
            "sha256": "ab" * 32,
            "contentType": "image/png",
            "sourceUnstable": False,
        },
        {
            "index": 1,
            "source": f"{SOURCE[:-4]}1.png",
            "state": "failed",
            "bucket": BUCKET,
            "key": f"kie/{TASK}/01.png",
            "error": "gone (HTTP 404)",
            "sourceUnstable": False,
        },
    ]
    assert "secret" not in str(doc)


def test_status_links_each_copied_file_for_the_configured_ttl() -> None:
    fakes = make_fakes(env={"PRESIGNED_URL_TTL_SECONDS": "600"})
    _record(fakes, Outcome.SUCCESS, "copied", "pending", "failed")
    before = datetime.now(UTC)

    files = status_document(fakes.services, TASK, links=True).files

    assert files[0].url == fakes.store.presigned_get(f"kie/{TASK}/00.png", 600)
    assert files[0].url_expires_at is not None
    expires = datetime.fromisoformat(files[0].url_expires_at)
    assert before + timedelta(seconds=599) <= expires <= datetime.now(UTC) + timedelta(seconds=600)
    assert [(f.url, f.url_expires_at) for f in files[1:]] == [(None, None), (None, None)]


def test_status_links_only_when_asked(fakes: Fakes) -> None:
    _record(fakes, Outcome.SUCCESS, "copied")
    assert status_document(fakes.services, TASK).files[0].url is None


def test_status_ttl_zero_turns_links_off() -> None:
    fakes = make_fakes(env={"PRESIGNED_URL_TTL_SECONDS": "0"})
    _record(fakes, Outcome.SUCCESS, "copied")
    assert status_document(fakes.services, TASK, links=True).files[0].url is None


def test_status_file_copied_into_another_bucket_gets_no_link(fakes: Fakes) -> None:
    _record(fakes, Outcome.SUCCESS)
    fakes.ledger.seed_file(_item(0, "copied", bucket="the-bucket-before"))
    (file,) = status_document(fakes.services, TASK, links=True).files
    assert (file.bucket, file.url) == ("the-bucket-before", None)
