"""Veo 4K upgrade callbacks: `data.info.resultUrls` + `imageUrls`, or snake_case `data.result_urls` + `image_urls`."""

from kie2s3.families._common import data_of, is_bare_failure
from kie2s3.families.base import JsonObject
from kie2s3.families.veo import VeoParser, has_4k_marks, has_veo_shape


class Veo4kParser(VeoParser):
    """Veo's 4K upgrade: the same record-info as Veo; told apart by thumbnails or `media_ids`.

    A 4K body without those is shaped like plain Veo (same files either way); registered after
    Veo, this parser still accepts it, so a `?family=veo4k` hint records the right family.
    """

    name = "veo4k"

    def matches(self, body: JsonObject) -> bool:
        data = data_of(body)
        has_id = "taskId" in data or "task_id" in data
        return (has_id and (has_4k_marks(body) or has_veo_shape(body))) or is_bare_failure(body)
