"""Suno MIDI callbacks: the task id at the top level as `task_id`, notes in `data.instruments` (no files)."""

from kie2s3.families._common import Callback, Family, Fields, RecordInfo, data_of
from kie2s3.families.base import JsonObject


class SunoMidiParser(Family):
    """Suno's MIDI from audio: a final result of notes, never of files (recorded `ignored`)."""

    name = "suno_midi"
    record_info_path = "/api/v1/midi/record-info"
    callback_model = Callback[Fields]
    record_model = RecordInfo  # `successFlag` 0/1/2/3; `midiData` holds the notes
    NO_FILES_REASON = "result has no files: MIDI notes"

    def matches(self, body: JsonObject) -> bool:
        data = data_of(body)
        # The documented shape keeps `task_id` at the top; a third party's, `data.taskId` beside the notes.
        return "instruments" in data or (isinstance(body.get("task_id"), str) and body.get("data") is None)
