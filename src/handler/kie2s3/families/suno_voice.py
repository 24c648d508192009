"""Suno voice callbacks (`voice/generate`, `voice/validate`): `data.taskId`, `voiceId` or `validateInfo`, no files."""

from kie2s3.families._common import Callback, Family, Fields, RecordInfo, data_of
from kie2s3.families.base import JsonObject


class SunoVoiceParser(Family):
    """Suno's custom voices: a voice id or a validation verdict, never a file (recorded `ignored`)."""

    name = "suno_voice"
    record_info_path = "/api/v1/voice/record-info"
    callback_model = Callback[Fields]
    record_model = RecordInfo
    NO_FILES_REASON = "result has no files: voice task"

    def matches(self, body: JsonObject) -> bool:
        data = data_of(body)
        return "taskId" in data and ("voiceId" in data or "validateInfo" in data)
