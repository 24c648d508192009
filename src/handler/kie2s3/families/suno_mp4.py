"""Suno music-video callbacks: `data.task_id` and `data.video_url` (null on failure)."""

from kie2s3.families._common import Callback, Family, Fields, Sources, SunoFileRecordInfo, Url, data_of
from kie2s3.families.base import JsonObject


class _Mp4Urls(Fields):
    """The callback's `data`; record-info's `response.videoUrl` is assumed by analogy with WAV (§0)."""

    video_url: Url = None

    def sources(self) -> Sources:
        return [(self.video_url, "video")]


class SunoMp4Parser(Family):
    """Suno's music video of a track: one `.mp4`. Runway also has `video_url`, with `video_id`/`image_url`."""

    name = "suno_mp4"
    record_info_path = "/api/v1/mp4/record-info"  # UNCONFIRMED path (kie-api.md §0)
    callback_model = Callback[_Mp4Urls]
    record_model = SunoFileRecordInfo[_Mp4Urls]

    def matches(self, body: JsonObject) -> bool:
        data = data_of(body)
        return "task_id" in data and "video_url" in data and not ("image_url" in data or "video_id" in data)
