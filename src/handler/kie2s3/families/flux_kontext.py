"""Flux Kontext callbacks: `data.taskId` and `data.info.resultImageUrl` (never the 10-minute `originImageUrl`)."""

from kie2s3.families._common import (
    Callback,
    Family,
    Fields,
    InInfo,
    ResponseRecordInfo,
    Sources,
    Url,
    info_of,
    is_bare_failure,
)
from kie2s3.families.base import JsonObject


class _FluxUrls(Fields):
    """`info` in callbacks, `response` in record-info. `originImageUrl` is an upstream copy: not ours."""

    result_image_url: Url = None  # failures keep `info`, with empty strings

    def sources(self) -> Sources:
        return [(self.result_image_url, "image")]


class FluxKontextParser(Family):
    """Flux Kontext generate/edit: one image; record-info `successFlag` 0/1/2/3."""

    name = "flux_kontext"
    record_info_path = "/api/v1/flux/kontext/record-info"
    callback_model = Callback[InInfo[_FluxUrls]]
    record_model = ResponseRecordInfo[_FluxUrls]

    def matches(self, body: JsonObject) -> bool:
        info = info_of(body)
        return "resultImageUrl" in info or "originImageUrl" in info or is_bare_failure(body)
