"""Suno WAV conversion callbacks: `data.task_id` and `data.audioWavUrl` (one CN page: `audio_wav_url`)."""

from kie2s3.families._common import Callback, Family, Fields, Sources, SunoFileRecordInfo, Url, data_of
from kie2s3.families.base import JsonObject


class _WavUrls(Fields):
    """The callback's `data` and record-info's `response` alike."""

    audio_wav_url: Url = None

    def sources(self) -> Sources:
        return [(self.audio_wav_url, "audio")]


class SunoWavParser(Family):
    """Suno's WAV conversion of a track: one `.wav` file."""

    name = "suno_wav"
    record_info_path = "/api/v1/wav/record-info"
    callback_model = Callback[_WavUrls]
    record_model = SunoFileRecordInfo[_WavUrls]

    def matches(self, body: JsonObject) -> bool:
        data = data_of(body)
        return "task_id" in data and ("audioWavUrl" in data or "audio_wav_url" in data)
