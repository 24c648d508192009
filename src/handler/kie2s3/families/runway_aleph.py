"""Runway Aleph callbacks: top-level `taskId`, `data.result_video_url` + `result_image_url` (`data` null on error)."""

from kie2s3.families._common import Callback, Family, Fields, ResponseRecordInfo, Sources, Url
from kie2s3.families.base import JsonObject


class _AlephUrls(Fields):
    """The callback's `data`; record-info's `response.resultVideoUrl`/`resultImageUrl` (names assumed)."""

    result_video_url: Url = None
    result_image_url: Url = None  # the thumbnail

    def sources(self) -> Sources:
        return [(self.result_video_url, "video"), (self.result_image_url, "image")]


class RunwayAlephParser(Family):
    """Runway Aleph: the only family whose task id (the one kie.ai signs) sits outside `data`."""

    name = "runway_aleph"
    record_info_path = "/api/v1/aleph/record-info"  # UNCONFIRMED on kie.ai (kie-api.md §5)
    callback_model = Callback[_AlephUrls]
    record_model = ResponseRecordInfo[_AlephUrls]  # `successFlag` 1 success (others assumed as Veo's)

    def matches(self, body: JsonObject) -> bool:
        data = body.get("data")
        has_results = isinstance(data, dict) and ("result_video_url" in data or "result_image_url" in data)
        return isinstance(body.get("taskId"), str) and (data is None or has_results)
