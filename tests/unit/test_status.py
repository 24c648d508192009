import pytest

from kie2s3.logic.status import task_state
from kie2s3.models import FileItem, FileState, Outcome, TaskItem


def _task(outcome: Outcome) -> TaskItem:
    return TaskItem(task_id="t1", family="market", outcome=outcome, created_at="x", updated_at="x")


def _files(*states: FileState) -> list[FileItem]:
    return [
        FileItem(task_id="t1", index=i, source="s", kind="image", key=f"k{i}", state=s, updated_at="x")
        for i, s in enumerate(states)
    ]


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (("copied", "copied"), "copied"),
        ((), "ignored"),  # never `copied` without files
        (("copied", "failed"), "failed"),
        (("copied", "pending"), "copying"),
        (("copying", "pending"), "copying"),
        (("pending", "pending"), "pending"),
        (("failed", "pending"), "pending"),
    ],
)
def test_task_state_from_files(states: tuple[FileState, ...], expected: str) -> None:
    assert task_state(_task(Outcome.SUCCESS), _files(*states)) == expected


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (Outcome.FAILED, "failed"),
        (Outcome.NOT_FINAL, "pending"),
        (Outcome.UNRECOGNISED, "ignored"),
        (Outcome.NO_FILES, "ignored"),
    ],
)
def test_task_state_from_outcome(outcome: Outcome, expected: str) -> None:
    assert task_state(_task(outcome), _files("pending")) == expected
