"""Market (`jobs/createTask`) callbacks: `data.taskId`, `data.state`, `data.resultJson` as a JSON string.

The files are read from the parsed `resultJson` only: `resultUrls[]`, or Suno's `data[]` tracks.
A `resultObject` (text models, lyrics) has no files by design. Any other shape of `resultJson` goes
through the safety net: every http(s) URL inside it is a file, except under keys naming an input, a
stream or the callback (`input*`, `*_input`, `imageUrls`, `stream*`, `source*`, `origin*`,
`callBackUrl`, in any spelling: a result may echo its request). The request's `param` is never read
for files: it holds the caller's inputs.
"""

import re
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Json

from kie2s3.families._common import Fields, Url
from kie2s3.families.base import JsonObject, task_id_of
from kie2s3.media import kind_of
from kie2s3.models import Outcome, ParsedCallback, SourceFile

# Keys whose values are inputs, streams or the callback URL (with its token), never results: judged
# by the key's letters and digits in lower case, so `input_image`, `inputImage` and `Input-Image` are
# one key (any depth).
_NOT_RESULT_PREFIXES = ("input", "stream", "source", "origin", "callback")
_NOT_RESULT_SUFFIXES = ("input", "inputs")
_NOT_RESULT_KEYS = frozenset({"imageurls"})
_NOT_A_LETTER = re.compile(r"[^a-z0-9]")
_URL_SCHEMES = ("https://", "http://")
# A model name is kept for keys, metadata and tags; longer than any real one is cut.
MAX_MODEL_CHARS = 256


def _model_name(value: object) -> str | None:
    """`data.model` when it is a non-blank string (anything else is no model, never a parse failure)."""
    if not isinstance(value, str):
        return None
    return value.strip()[:MAX_MODEL_CHARS] or None


class _MarketTrack(Fields):
    """Suno on the Market API reports tracks instead of resultUrls (kie-api.md §1.1)."""

    audio_url: Url = None
    image_url: Url = None


class _MarketResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    resultUrls: list[str] = []
    data: list[_MarketTrack] = []
    resultObject: dict[str, Any] | None = None


class _MarketRecordInfo(BaseModel):
    """`GET /api/v1/jobs/recordInfo` data; a callback's `data` is the same plus `taskId`."""

    model_config = ConfigDict(extra="allow")

    state: str | None = None
    model: Annotated[str | None, BeforeValidator(_model_name)] = None
    resultJson: Json[Any] | None = None
    failCode: str | int | None = None
    failMsg: str | None = None


class _MarketData(_MarketRecordInfo):
    taskId: str


class _MarketCallback(BaseModel):
    code: int
    msg: str | None = None
    data: _MarketData


def names_no_result(key: object) -> bool:
    """Whether a JSON key names an input, a stream or the callback URL, in any spelling."""
    word = _NOT_A_LETTER.sub("", str(key).lower())
    return (
        word.startswith(_NOT_RESULT_PREFIXES)
        or word.endswith(_NOT_RESULT_SUFFIXES)
        or word in _NOT_RESULT_KEYS
    )


def net_urls(value: object) -> Iterator[str]:
    """Every http(s) URL inside a parsed JSON value, skipping what lies under input, stream or
    callback keys."""
    if isinstance(value, str):
        if value.strip().lower().startswith(_URL_SCHEMES):
            yield value.strip()
    elif isinstance(value, dict):
        for key, item in value.items():
            if not names_no_result(key):
                yield from net_urls(item)
    elif isinstance(value, list):
        for item in value:
            yield from net_urls(item)


class MarketParser:
    """The Market family: any non-200 code or a `state` other than `success` is a failure."""

    name = "market"
    record_info_path = "/api/v1/jobs/recordInfo"

    def matches(self, body: JsonObject) -> bool:
        data = body.get("data")
        return isinstance(data, dict) and "taskId" in data and ("resultJson" in data or "state" in data)

    def parse(self, body: JsonObject) -> ParsedCallback:
        callback = _MarketCallback.model_validate(body)
        record: _MarketRecordInfo = callback.data
        if callback.code != 200 and record.state == "success":
            # A non-200 envelope is a failure whatever `state` says (kie-api.md §1.1).
            record = record.model_copy(update={"state": "fail", "failMsg": record.failMsg or callback.msg})
        return self._outcome(task_id_of(body), record, callback.msg)

    def parse_record(self, task_id: str, data: JsonObject) -> ParsedCallback:
        return self._outcome(task_id, _MarketRecordInfo.model_validate(data), None)

    def _outcome(self, task_id: str, record: _MarketRecordInfo, message: str | None) -> ParsedCallback:
        def parsed(
            outcome: Outcome, reason: str | None = None, files: tuple[SourceFile, ...] = ()
        ) -> ParsedCallback:
            return ParsedCallback(
                task_id=task_id,
                family=self.name,
                outcome=outcome,
                files=files,
                reason=reason,
                model=record.model,
            )

        if record.state in ("waiting", "queuing", "generating"):
            return parsed(Outcome.NOT_FINAL, f"waiting for kie.ai to finish ({record.state})")
        if record.state != "success":
            return parsed(Outcome.FAILED, _failure_reason(record, message))
        return parsed(*_result(record.resultJson))


def _failure_reason(record: _MarketRecordInfo, message: str | None) -> str:
    """Why a task failed: its failMsg, else the envelope's message, else its state; with its failCode."""
    reason = record.failMsg or message or f"state {record.state!r}"
    return f"{reason} (failCode {record.failCode})" if record.failCode else reason


def _result(result: Any) -> tuple[Outcome, str | None, tuple[SourceFile, ...]]:
    """What a finished task's parsed resultJson holds: its files (the known fields first, else any URL
    the net finds), no files by design (a text result), or nothing recognised."""
    known = _MarketResult.model_validate(result) if isinstance(result, dict) else _MarketResult()
    urls = [*known.resultUrls, *(u for t in known.data for u in (t.audio_url, t.image_url) if u)]
    if urls:
        return Outcome.SUCCESS, None, tuple(_files(urls, "parser"))
    if known.resultObject is not None:
        return Outcome.NO_FILES, "result has no files: text result", ()
    if found := list(net_urls(result)):
        return Outcome.SUCCESS, None, tuple(_files(found, "net"))
    return Outcome.UNRECOGNISED, "Market result names no file URL; raw body archived for replay", ()


def _files(urls: list[str], found_by: str) -> Iterator[SourceFile]:
    for url in dict.fromkeys(urls):
        yield SourceFile.model_validate({"url": url, "kind": kind_of(url), "found_by": found_by})
