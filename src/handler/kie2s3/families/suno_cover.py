"""Suno cover image callbacks: camelCase `data.taskId` (unlike other Suno callbacks) and `data.images[]`."""

from typing import ClassVar

from kie2s3.families._common import (
    FLAG_STATES,
    SUNO_FLAG_STATES,
    Callback,
    Family,
    Fields,
    ResponseRecordInfo,
    Sources,
    StatusTable,
    Url,
    data_of,
    each,
)
from kie2s3.families.base import JsonObject
from kie2s3.models import Outcome


class _Images(Fields):
    """The callback's `data` and record-info's `response` alike: usually two PNGs; null on failure."""

    images: list[Url] | None = None

    def sources(self) -> Sources:
        return each(self.images or (), "image")


class CoverCallback(Callback[_Images]):
    """Any code but 200 fails (501 documented); so does a 200 whose `images` is null."""

    def state(self) -> tuple[Outcome, str | None]:
        outcome, reason = super().state()
        if outcome is Outcome.SUCCESS and (self.data is None or self.data.images is None):
            return Outcome.FAILED, "cover images are null"
        return outcome, reason


class CoverRecordInfo(ResponseRecordInfo[_Images]):
    """`GET /api/v1/suno/cover/record-info` data: kie's example has `successFlag` 1, its status list
    the names PENDING, SUCCESS, CREATE_TASK_FAILED, GENERATE_COVER_FAILED; both are read."""

    STATES: ClassVar[StatusTable] = {**FLAG_STATES, **SUNO_FLAG_STATES}


class SunoCoverParser(Family):
    """Suno's cover images for a music task. Its failure, `{taskId, images: null}`, looks like a bare
    `{taskId}` failure, so it is registered before the parsers that take those."""

    name = "suno_cover"
    record_info_path = "/api/v1/suno/cover/record-info"
    callback_model = CoverCallback
    record_model = CoverRecordInfo

    def matches(self, body: JsonObject) -> bool:
        data = data_of(body)
        return "taskId" in data and "images" in data
