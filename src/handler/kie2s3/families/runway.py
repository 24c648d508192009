"""Runway generate/extend callbacks: `data.task_id`, `data.video_url`, `data.image_url` (+`video_id`)."""

from typing import ClassVar

from pydantic import Field

from kie2s3.families._common import Callback, Family, Fields, RecordInfo, Sources, StatusTable, Url, data_of
from kie2s3.families.base import JsonObject
from kie2s3.models import Outcome


class _RunwayUrls(Fields):
    """The callback's `data` (failures carry "" for both) and record-detail's `videoInfo` alike."""

    video_url: Url = None
    image_url: Url = None

    def sources(self) -> Sources:
        return [(self.video_url, "video"), (self.image_url, "image")]


class RunwayRecordInfo(RecordInfo):
    """`GET /api/v1/runway/record-detail` data: `state`, URLs in `videoInfo`."""

    STATES: ClassVar[StatusTable] = {
        "success": Outcome.SUCCESS,
        "fail": Outcome.FAILED,
        "wait": Outcome.NOT_FINAL,
        "queueing": Outcome.NOT_FINAL,
        "queuing": Outcome.NOT_FINAL,
        "generating": Outcome.NOT_FINAL,
    }

    run_state: str | None = Field(default=None, validation_alias="state")  # `state()` is the outcome
    video_info: _RunwayUrls | None = None

    def status_value(self) -> object:
        return self.run_state

    def sources(self) -> Sources:
        return self.video_info.sources() if self.video_info else ()


class RunwayParser(Family):
    """Runway: a video and its cover. Registered after Suno MP4, which has `video_url` alone."""

    name = "runway"
    record_info_path = "/api/v1/runway/record-detail"
    callback_model = Callback[_RunwayUrls]
    record_model = RunwayRecordInfo

    def matches(self, body: JsonObject) -> bool:
        data = data_of(body)
        return "task_id" in data and any(k in data for k in ("video_url", "image_url", "video_id"))
