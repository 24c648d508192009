"""Market (`jobs/createTask`) callbacks: `data.taskId`, `data.state`, `data.resultJson` as a JSON string."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Json

from kie2s3.families.base import JsonObject, task_id_of
from kie2s3.media import kind_of
from kie2s3.models import Outcome, ParsedCallback, SourceFile


class _MarketTrack(BaseModel):
    """Suno on the Market API reports tracks instead of resultUrls (kie-api.md §1.1)."""

    audio_url: str | None = None
    image_url: str | None = None


class _MarketResult(BaseModel):
    resultUrls: list[str] = []
    data: list[_MarketTrack] = []
    resultObject: dict[str, Any] | None = None


class _MarketRecord(BaseModel):
    """`GET /api/v1/jobs/recordInfo` data; a callback's `data` is the same plus `taskId`."""

    model_config = ConfigDict(extra="allow")

    state: str | None = None
    resultJson: Json[_MarketResult] | None = None
    failCode: str | int | None = None
    failMsg: str | None = None


class _MarketData(_MarketRecord):
    taskId: str


class _MarketCallback(BaseModel):
    code: int
    msg: str | None = None
    data: _MarketData


class MarketParser:
    """The Market family: any non-200 code or a `state` other than `success` is a failure."""

    name = "market"
    record_info_path = "/api/v1/jobs/recordInfo"

    def matches(self, body: JsonObject) -> bool:
        data = body.get("data")
        return isinstance(data, dict) and "taskId" in data and ("resultJson" in data or "state" in data)

    def parse(self, body: JsonObject) -> ParsedCallback:
        callback = _MarketCallback.model_validate(body)
        record: _MarketRecord = callback.data
        if callback.code != 200 and record.state == "success":
            # A non-200 envelope is a failure whatever `state` says (kie-api.md §1.1).
            record = record.model_copy(update={"state": "fail", "failMsg": record.failMsg or callback.msg})
        return self._outcome(task_id_of(body), record, callback.msg)

    def parse_record(self, task_id: str, data: JsonObject) -> ParsedCallback:
        return self._outcome(task_id, _MarketRecord.model_validate(data), None)

    def _outcome(self, task_id: str, record: _MarketRecord, message: str | None) -> ParsedCallback:
        if record.state in ("waiting", "queuing", "generating"):
            return ParsedCallback(
                task_id=task_id, family=self.name, outcome=Outcome.NOT_FINAL, reason=record.state
            )
        if record.state != "success":
            reason = record.failMsg or message or f"state {record.state!r}"
            if record.failCode:
                reason = f"{reason} (failCode {record.failCode})"
            return ParsedCallback(task_id=task_id, family=self.name, outcome=Outcome.FAILED, reason=reason)
        result = record.resultJson or _MarketResult()
        urls = list(result.resultUrls)
        for track in result.data:
            urls.extend(u for u in (track.audio_url, track.image_url) if u)
        files = tuple(SourceFile(url=u, kind=kind_of(u)) for u in dict.fromkeys(urls))
        return ParsedCallback(task_id=task_id, family=self.name, outcome=Outcome.SUCCESS, files=files)
