"""What Luma modify and Midjourney callbacks share: `data.taskId`, `data.promptJson`, `data.resultUrls`."""

from typing import ClassVar

from pydantic import ValidationError

from kie2s3.families._common import (
    Callback,
    Family,
    Fields,
    LenientJsonObject,
    Sources,
    UrlList,
    data_of,
    each,
)
from kie2s3.families.base import JsonObject
from kie2s3.media import kind_of
from kie2s3.models import FileKind

LUMA = "luma"
MIDJOURNEY = "midjourney"


class PromptedData(Fields):
    prompt_json: LenientJsonObject = None  # the original request as a JSON string; unreadable → None
    result_urls: UrlList = ()  # absent (Luma) or [] (Midjourney) on failure

    def families(self) -> frozenset[str]:
        """Which of the two sent this: the request's `taskType` or `videoUrl`, else the results' kinds."""
        prompt = self.prompt_json or {}
        task_type = prompt.get("taskType")
        if isinstance(task_type, str) and task_type.startswith("mj_"):
            return frozenset({MIDJOURNEY})
        if "videoUrl" in prompt:  # Luma modifies an input video; Midjourney requests name none
            return frozenset({LUMA})
        kinds = {kind_of(url) for url in self.result_urls if url}
        if "video" in kinds:
            return frozenset({LUMA})
        if "image" in kinds:
            return frozenset({MIDJOURNEY})
        return frozenset({LUMA, MIDJOURNEY})


def prompted_families(body: JsonObject) -> frozenset[str]:
    """The families a body could come from: none unless it has the shared shape, both when it cannot tell."""
    data = data_of(body)
    if "taskId" not in data or "info" in data or not ("resultUrls" in data or "promptJson" in data):
        return frozenset()
    try:
        return PromptedData.model_validate(data).families()
    except ValidationError:
        return frozenset({LUMA, MIDJOURNEY})  # parse() will report what does not fit


class PromptedCallback(Callback[PromptedData]):
    DEFAULT_KIND: ClassVar[FileKind] = "file"

    def sources(self) -> Sources:
        return each(self.data.result_urls if self.data else (), self.DEFAULT_KIND)


class PromptedFamily(Family):
    """Luma or Midjourney: matches what `prompted_families` says this family could have sent."""

    def matches(self, body: JsonObject) -> bool:
        return self.name in prompted_families(body)
