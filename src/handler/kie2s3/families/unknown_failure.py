"""Bare failures: `{code ≠ 200, data: {taskId}}` and nothing else, which several families send alike."""

from kie2s3.families._common import Callback, Family, Fields, RecordInfo, is_bare_failure
from kie2s3.families.base import UNKNOWN, JsonObject


class UnknownFailureParser(Family):
    """A failure that names no family (4o Image, Veo 4K and Suno cover failures look the same).

    Recorded `failed` under family `unknown` rather than a guessed one; a `?family=` hint that
    names a family whose failures look like this (gpt4o, veo4k) wins over it.
    """

    name = UNKNOWN
    record_info_path = ""  # no record-info: the family is not known
    callback_model = Callback[Fields]
    record_model = RecordInfo

    def matches(self, body: JsonObject) -> bool:
        return is_bare_failure(body)
