"""Midjourney callbacks: `data.taskId`, `data.resultUrls` (a grid of 4), `data.promptJson` with `taskType`."""

from typing import Annotated

from kie2s3.families._common import Fields, JsonInString, RecordInfo, Sources, Url, each
from kie2s3.families._prompted import MIDJOURNEY, PromptedCallback, PromptedFamily


class MidjourneyCallback(PromptedCallback):
    DEFAULT_KIND = "image"


class _MjResultUrl(Fields):
    result_url: Url = None


class _MjResultInfo(Fields):
    result_urls: list[_MjResultUrl] | None = None  # objects, unlike every other family

    def sources(self) -> Sources:
        return each((entry.result_url for entry in self.result_urls or ()), "image")


class MidjourneyRecordInfo(RecordInfo):
    """`GET /api/v1/mj/record-info` data: `successFlag`, `resultInfoJson.resultUrls[].resultUrl`."""

    result_info_json: Annotated[_MjResultInfo | None, JsonInString] = None

    def sources(self) -> Sources:
        return self.result_info_json.sources() if self.result_info_json else ()


class MidjourneyParser(PromptedFamily):
    """Midjourney: a grid of images (or videos for `mj_video`)."""

    name = MIDJOURNEY
    record_info_path = "/api/v1/mj/record-info"
    callback_model = MidjourneyCallback
    record_model = MidjourneyRecordInfo
