"""Market (`jobs/createTask`) callbacks: `data.taskId`, `data.state`, `data.resultJson` as a JSON string."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Json

from kie2s3.families.base import JsonObject, find_task_id
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


class _MarketData(BaseModel):
    model_config = ConfigDict(extra="allow")

    taskId: str
    state: str | None = None
    resultJson: Json[_MarketResult] | None = None
    failCode: str | int | None = None
    failMsg: str | None = None


class _MarketCallback(BaseModel):
    code: int
    msg: str | None = None
    data: _MarketData


class MarketParser:
    """The Market family: any non-200 code or a `state` other than `success` is a failure."""

    name = "market"

    def matches(self, body: JsonObject) -> bool:
        data = body.get("data")
        return isinstance(data, dict) and "taskId" in data and ("resultJson" in data or "state" in data)

    def task_id(self, body: JsonObject) -> str | None:
        return find_task_id(body)

    def parse(self, body: JsonObject) -> ParsedCallback:
        callback = _MarketCallback.model_validate(body)
        data = callback.data
        if callback.code != 200 or data.state != "success":
            reason = data.failMsg or callback.msg or f"state {data.state!r}, code {callback.code}"
            if data.failCode:
                reason = f"{reason} (failCode {data.failCode})"
            return ParsedCallback(
                task_id=data.taskId, family=self.name, outcome=Outcome.FAILED, reason=reason
            )
        urls = list(data.resultJson.resultUrls) if data.resultJson else []
        for track in data.resultJson.data if data.resultJson else []:
            urls.extend(u for u in (track.audio_url, track.image_url) if u)
        files = tuple(SourceFile(url=u, kind=kind_of(u)) for u in dict.fromkeys(urls))
        return ParsedCallback(task_id=data.taskId, family=self.name, outcome=Outcome.SUCCESS, files=files)
