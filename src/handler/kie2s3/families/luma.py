"""Luma modify-video callbacks: `data.taskId`, `data.resultUrls` directly under `data`, `data.promptJson`."""

from typing import ClassVar

from kie2s3.families._common import (
    FLAG_STATES,
    Fields,
    ResponseRecordInfo,
    Sources,
    StatusTable,
    UrlList,
    each,
)
from kie2s3.families._prompted import LUMA, PromptedCallback, PromptedFamily
from kie2s3.models import Outcome


class LumaCallback(PromptedCallback):
    DEFAULT_KIND = "video"


class _LumaUrls(Fields):
    result_urls: UrlList = ()

    def sources(self) -> Sources:
        return each(self.result_urls, "video")


class LumaRecordInfo(ResponseRecordInfo[_LumaUrls]):
    """`GET /api/v1/modify/record-info` data: `successFlag`, where 4 = callback failed, generation OK."""

    STATES: ClassVar[StatusTable] = {**FLAG_STATES, 4: Outcome.SUCCESS}


class LumaParser(PromptedFamily):
    """Luma modify: a video. Registered before Midjourney, it takes the bodies neither can claim."""

    name = LUMA
    record_info_path = "/api/v1/modify/record-info"
    callback_model = LumaCallback
    record_model = LumaRecordInfo
