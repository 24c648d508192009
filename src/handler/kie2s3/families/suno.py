"""Suno (legacy endpoints) callbacks: `data.callbackType` stages, `data.task_id`, tracks in `data.data`."""

from collections.abc import Sequence
from typing import ClassVar, Literal

from kie2s3.families._common import (
    Callback,
    Family,
    Fields,
    ResponseRecordInfo,
    Sources,
    StatusTable,
    Url,
    data_of,
)
from kie2s3.families.base import JsonObject
from kie2s3.models import Outcome


class _Track(Fields):
    """A track (`audio_url` in callbacks, `audioUrl` in record-info): its mp3 and its cover.

    Never `stream_audio_url` (a stream, not the file) nor the `source_*` inputs of upload flows.
    """

    audio_url: Url = None
    image_url: Url = None
    text: str | None = None  # lyrics tasks: the lyrics, and no files


def _track_sources(tracks: Sequence[_Track] | None) -> Sources:
    return [source for t in tracks or () for source in ((t.audio_url, "audio"), (t.image_url, "image"))]


class _SunoData(Fields):
    callback_type: Literal["text", "first", "complete", "error"]
    data: list[_Track] | None = None  # [] on text, null on error

    def sources(self) -> Sources:
        return _track_sources(self.data)


class SunoCallback(Callback[_SunoData]):
    data: _SunoData

    def state(self) -> tuple[Outcome, str | None]:
        outcome, reason = super().state()
        stage = self.data.callback_type
        if outcome is Outcome.FAILED or stage == "error":
            return Outcome.FAILED, reason or self.msg or "callbackType error"
        if stage != "complete":
            # text → first → complete: only `complete` carries the final set of files (§1.3).
            return Outcome.NOT_FINAL, f"waiting for the complete stage ({stage})"
        tracks = self.data.data or []
        if tracks and all(t.text is not None and not (t.audio_url or t.image_url) for t in tracks):
            return Outcome.NO_FILES, "result has no files: lyrics"
        return outcome, reason


class _SunoResponse(Fields):
    suno_data: list[_Track] | None = None

    def sources(self) -> Sources:
        return _track_sources(self.suno_data)


class SunoRecordInfo(ResponseRecordInfo[_SunoResponse]):
    """`GET /api/v1/generate/record-info` data: `status`, tracks in `response.sunoData`."""

    STATES: ClassVar[StatusTable] = {
        "SUCCESS": Outcome.SUCCESS,
        "PENDING": Outcome.NOT_FINAL,
        "TEXT_SUCCESS": Outcome.NOT_FINAL,
        "FIRST_SUCCESS": Outcome.NOT_FINAL,
        "CREATE_TASK_FAILED": Outcome.FAILED,
        "GENERATE_AUDIO_FAILED": Outcome.FAILED,
        "CALLBACK_EXCEPTION": Outcome.FAILED,
        "SENSITIVE_WORD_ERROR": Outcome.FAILED,
    }

    status: str | None = None

    def status_value(self) -> object:
        return self.status


class SunoParser(Family):
    """Suno's legacy endpoints: several callbacks per task, only `complete` is final."""

    name = "suno"
    record_info_path = "/api/v1/generate/record-info"
    callback_model = SunoCallback
    record_model = SunoRecordInfo

    def matches(self, body: JsonObject) -> bool:
        data = data_of(body)
        return "task_id" in data and "callbackType" in data
