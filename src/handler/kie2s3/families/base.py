"""The family parser protocol, and detection over the registry."""

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from kie2s3.models import ParsedCallback

JsonObject = Mapping[str, Any]


class FamilyParser(Protocol):
    """One kie.ai family: its callback shape, and its record-info endpoint for copy-by-taskId."""

    name: str
    record_info_path: str  # GET <path>?taskId=… (kie-api.md §5)

    def matches(self, body: JsonObject) -> bool:
        """Whether the body has this family's shape."""
        ...

    def task_id(self, body: JsonObject) -> str | None:
        """The task id, from wherever this family keeps it (and signs it)."""
        ...

    def parse(self, body: JsonObject) -> ParsedCallback:
        """The outcome and the final files; raise ValueError when the body does not fit."""
        ...

    def parse_record(self, task_id: str, data: JsonObject) -> ParsedCallback:
        """The same from record-info's `data` object (NOT_FINAL while the task is still running)."""
        ...


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def find_task_id(body: JsonObject) -> str | None:
    """The task id wherever any family keeps it: `data.taskId`, `data.task_id` or top-level `taskId`."""
    data = body.get("data")
    if isinstance(data, Mapping):
        for field in ("taskId", "task_id"):
            if found := _text(data.get(field)):
                return found
    return _text(body.get("taskId")) or _text(body.get("task_id"))


def parser_for(name: str, parsers: Sequence[FamilyParser]) -> FamilyParser | None:
    """The parser registered under that family name, if any."""
    return next((p for p in parsers if p.name == name), None)


def detect(body: JsonObject, parsers: Sequence[FamilyParser], hint: str | None = None) -> FamilyParser | None:
    """The family of a body: the hinted one when it fits, else the first parser whose shape matches."""
    if hint and (hinted := parser_for(hint, parsers)) and hinted.matches(body):
        return hinted
    return next((p for p in parsers if p.matches(body)), None)
