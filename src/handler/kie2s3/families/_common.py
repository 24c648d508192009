"""What the non-Market family parsers share: tolerant URL fields, status tables and the parse skeleton."""

import json
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, ClassVar

from pydantic import AliasChoices, AliasGenerator, BaseModel, BeforeValidator, ConfigDict
from pydantic.alias_generators import to_camel

from kie2s3.families.base import JsonObject, task_id_of
from kie2s3.media import kind_of
from kie2s3.models import FileKind, Outcome, ParsedCallback, SourceFile

# (url, kind to assume when the URL's suffix says nothing), in archive order.
Sources = Iterable[tuple[str | None, FileKind]]
StatusTable = Mapping[int | str, Outcome]


class _TooDeep(ValueError):
    """JSON in a string that nests too deeply to read: unreadable, like any other invalid JSON."""


def _loads(text: str) -> Any:
    """json.loads for JSON inside a string field; ValueError (never RecursionError) when unreadable.

    The body around it fits in 256 KiB yet may nest that string thousands deep: as unreadable as
    invalid JSON, so the callback is recorded unrecognised (raw body kept), not refused.
    """
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise _TooDeep("JSON in a string nests too deeply to read") from exc


def _blank_to_none(value: object) -> object:
    return (value.strip() or None) if isinstance(value, str) else value


def _list_or_json_list(value: object) -> object:
    """An array, or the same array JSON-encoded in a string (Veo documents both, kie-api.md §1.2)."""
    if value is None:
        return []
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return []
    try:
        loaded = _loads(text)
    except _TooDeep:
        raise
    except ValueError:
        if text.startswith("[") and text.endswith("]"):
            # The OpenAPI example is `'[http://example.com/video1.mp4]'`: brackets, no quotes.
            return [part.strip().strip("\"'") for part in text[1:-1].split(",")]
        return [text]
    return [loaded] if isinstance(loaded, str) else loaded


def _json_object(value: object) -> object:
    return _loads(value) if isinstance(value, str) else value


def _json_object_or_none(value: object) -> object:
    if isinstance(value, str):
        try:
            value = _loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


Url = Annotated[str | None, BeforeValidator(_blank_to_none)]
"""A URL field; empty or blank strings (failure bodies carry them) read as absent."""
UrlList = Annotated[tuple[Url, ...], BeforeValidator(_list_or_json_list)]
"""A list of URLs given as an array or as a JSON string of one; null reads as empty."""
JsonInString = BeforeValidator(_json_object)
"""Annotate an object field that may arrive JSON-encoded in a string (invalid JSON is an error)."""
LenientJsonObject = Annotated[dict[str, Any] | None, BeforeValidator(_json_object_or_none)]
"""An object that may arrive JSON-encoded in a string; anything unreadable reads as None."""

FLAG_STATES: StatusTable = {0: Outcome.NOT_FINAL, 1: Outcome.SUCCESS, 2: Outcome.FAILED, 3: Outcome.FAILED}
"""record-info `successFlag`: 0 generating, 1 success, 2 create failed, 3 generation failed (§5)."""
SUNO_FLAG_STATES: StatusTable = {
    "SUCCESS": Outcome.SUCCESS,
    "PENDING": Outcome.NOT_FINAL,
    "GENERATING": Outcome.NOT_FINAL,
    "CREATE_TASK_FAILED": Outcome.FAILED,
    "CALLBACK_EXCEPTION": Outcome.FAILED,
}
"""The string `successFlag` of Suno's WAV and music-video record-info (other `*_FAILED` values fail too)."""


def outcome_of(status: object, states: StatusTable) -> Outcome:
    """The outcome a record-info status stands for; ValueError for a status kie.ai does not document."""
    if isinstance(status, str) and status.strip().isdigit():
        status = int(status)
    if isinstance(status, int | str) and status in states:
        return states[status]
    if isinstance(status, str) and status.upper().endswith("FAILED"):
        return Outcome.FAILED
    raise ValueError(f"status {status!r} is not one kie.ai documents")


def source_files(sources: Sources) -> tuple[SourceFile, ...]:
    """The files to archive: blank URLs dropped, each URL once, in the order given."""
    found: dict[str, SourceFile] = {}
    for raw, default in sources:
        url = (raw or "").strip()
        if url and url not in found:
            found[url] = SourceFile(url=url, kind=kind_of(url, default))
    return tuple(found.values())


def each(urls: Iterable[str | None], kind: FileKind) -> list[tuple[str | None, FileKind]]:
    """Sources for a list of URLs that share one fallback kind."""
    return [(url, kind) for url in urls]


def _snake_or_camel(name: str) -> AliasChoices:
    return AliasChoices(name, to_camel(name))


class Fields(BaseModel):
    """Part of a body, each field read under its snake_case or its camelCase name.

    kie.ai spells one field both ways, family by family and between a family's callback and its
    record-info (`audio_url` / `audioUrl`, `result_urls` / `resultUrls`; kie-api.md §0).
    """

    model_config = ConfigDict(alias_generator=AliasGenerator(validation_alias=_snake_or_camel))

    def sources(self) -> Sources:
        """The result URLs named here, in archive order."""
        return ()


class InInfo[U: Fields](Fields):
    """A callback `data` that keeps its URLs one level down, in `info` (Veo, 4o Image, Flux Kontext)."""

    info: U | None = None  # absent (or emptied) on failure

    def sources(self) -> Sources:
        return self.info.sources() if self.info else ()


class Report(Fields):
    """A callback body or a record-info `data`, reduced to an outcome and the files it names."""

    def state(self) -> tuple[Outcome, str | None]:
        """The outcome, with the reason when failed or not final."""
        raise NotImplementedError


class Callback[D: Fields](Report):
    """The `{code, msg, data}` envelope: any code but 200 is a failure, `msg` its reason (§1)."""

    code: int
    msg: str | None = None
    data: D | None = None

    def state(self) -> tuple[Outcome, str | None]:
        if self.code != 200:
            return Outcome.FAILED, self.msg or f"code {self.code}"
        return Outcome.SUCCESS, None

    def sources(self) -> Sources:
        return self.data.sources() if self.data else ()


class RecordInfo(Report):
    """A record-info `data`: a status looked up in `STATES`; errors in `errorMessage` or `failMsg`."""

    STATES: ClassVar[StatusTable] = FLAG_STATES

    success_flag: int | str | None = None
    error_code: int | str | None = None
    error_message: str | None = None
    fail_code: int | str | None = None
    fail_msg: str | None = None

    def status_value(self) -> object:
        """The field this family keeps its status in."""
        return self.success_flag

    def state(self) -> tuple[Outcome, str | None]:
        status = self.status_value()
        outcome = outcome_of(status, self.STATES)
        if outcome is Outcome.SUCCESS:
            return outcome, None
        if outcome is Outcome.NOT_FINAL:
            return outcome, f"status {status}"
        reason = self.error_message or self.fail_msg or f"status {status}"
        if self.error_code:
            return outcome, f"{reason} (errorCode {self.error_code})"
        return outcome, f"{reason} (failCode {self.fail_code})" if self.fail_code else reason


class ResponseRecordInfo[R: Fields](RecordInfo):
    """A record-info `data` that keeps its URLs in `response`."""

    response: R | None = None

    def sources(self) -> Sources:
        return self.response.sources() if self.response else ()


class SunoFileRecordInfo[R: Fields](ResponseRecordInfo[R]):
    """Suno's WAV and music-video record-info: `successFlag` is a string (`SUCCESS`, `…_FAILED`)."""

    STATES: ClassVar[StatusTable] = SUNO_FLAG_STATES


def data_of(body: JsonObject) -> Mapping[str, Any]:
    """The body's `data` object ({} when it is null or not an object)."""
    data = body.get("data")
    return data if isinstance(data, Mapping) else {}


def info_of(body: JsonObject) -> Mapping[str, Any]:
    """The body's `data.info` object ({} when absent)."""
    info = data_of(body).get("info")
    return info if isinstance(info, Mapping) else {}


def is_bare_failure(body: JsonObject) -> bool:
    """A failure whose `data` holds nothing but `taskId`: 4o (no `info`), and likely Veo, 4K or Flux too."""
    data = data_of(body)
    return (
        body.get("code") != 200
        and "taskId" in data
        and all(value is None for key, value in data.items() if key != "taskId")
    )


class Family:
    """A family parser driven by two models: its callback body and its record-info `data`.

    A success that names no file is `NO_FILES_REASON` when the family's results carry no files by
    design, else UNRECOGNISED (its shape is not one this parser knows): never a success.
    """

    name: str
    record_info_path: str
    callback_model: type[Report]
    record_model: type[RecordInfo]
    NO_FILES_REASON: ClassVar[str | None] = None

    def matches(self, body: JsonObject) -> bool:
        raise NotImplementedError

    def parse(self, body: JsonObject) -> ParsedCallback:
        return self._parsed(task_id_of(body), self.callback_model.model_validate(body))

    def parse_record(self, task_id: str, data: JsonObject) -> ParsedCallback:
        return self._parsed(task_id, self.record_model.model_validate(data))

    def _parsed(self, task_id: str, report: Report) -> ParsedCallback:
        outcome, reason = report.state()
        files = source_files(report.sources()) if outcome is Outcome.SUCCESS else ()
        if outcome is Outcome.SUCCESS and not files:
            outcome, reason = (
                (Outcome.NO_FILES, self.NO_FILES_REASON)
                if self.NO_FILES_REASON
                else (Outcome.UNRECOGNISED, f"{self.name} success names no file URL kie2s3 knows")
            )
        return ParsedCallback(task_id=task_id, family=self.name, outcome=outcome, files=files, reason=reason)
