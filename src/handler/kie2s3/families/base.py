"""The family parser protocol, and detection over the registry."""

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from kie2s3.errors import BadRequestError
from kie2s3.models import TASK_ID_PATTERN, ParsedCallback

JsonObject = Mapping[str, Any]
# The family recorded when no parser can name one: a bare failure, or a shape no parser knows.
UNKNOWN = "unknown"


class FamilyParser(Protocol):
    """One kie.ai family: its callback shape, and its record-info endpoint for copy-by-taskId."""

    name: str
    record_info_path: str  # GET <path>?taskId=… (kie-api.md §5)

    def matches(self, body: JsonObject) -> bool:
        """Whether the body has this family's shape."""
        ...

    def parse(self, body: JsonObject) -> ParsedCallback:
        """The outcome and the final files, under `task_id_of(body)`; ValueError when the body does not fit."""
        ...

    def parse_record(self, task_id: str, data: JsonObject) -> ParsedCallback:
        """The same from record-info's `data` object (NOT_FINAL while the task is still running)."""
        ...


# Where kie.ai's families keep the task id they sign: `data.taskId` (most), `data.task_id` (Suno,
# Runway), top-level `taskId` (Runway Aleph) or `task_id` (Suno MIDI). Market bodies carry two.
TASK_ID_FIELDS = (("data", "taskId"), ("data", "task_id"), (None, "taskId"), (None, "task_id"))


def task_id_of(body: JsonObject) -> str:
    """The one task id a body names: the id that is authenticated, parsed, recorded and used in keys.

    Every candidate field that is present and not null must hold the same valid id; a blank,
    non-string or malformed one, two different ones, or none at all is a BadRequestError.
    """
    data = body.get("data")
    found: set[str] = set()
    for container, name in TASK_ID_FIELDS:
        holder = body if container is None else data
        value = holder.get(name) if isinstance(holder, Mapping) else None
        if value is None:
            continue
        if not isinstance(value, str) or not TASK_ID_PATTERN.fullmatch(value):
            where = f"{container}.{name}" if container else name
            raise BadRequestError(
                f"{where} is not a task id (blank, not a string, or characters a task id never has)"
            )
        found.add(value)
    if not found:
        raise BadRequestError("body carries no task id (data.taskId, data.task_id or taskId)")
    if len(found) > 1:
        raise BadRequestError("body names more than one task id")
    return found.pop()


def parser_for(name: str, parsers: Sequence[FamilyParser]) -> FamilyParser | None:
    """The parser registered under that family name, if any."""
    return next((p for p in parsers if p.name == name), None)


def detect(body: JsonObject, parsers: Sequence[FamilyParser], hint: str | None = None) -> FamilyParser | None:
    """The family of a body: the hinted one when it fits, else the first parser whose shape matches."""
    if hint and (hinted := parser_for(hint, parsers)) and hinted.matches(body):
        return hinted
    return next((p for p in parsers if p.matches(body)), None)
