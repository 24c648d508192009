"""Veo 3.1 callbacks: `data.taskId`, `data.info.resultUrls` then `originUrls` (arrays or JSON strings)."""

from kie2s3.families._common import (
    Callback,
    Family,
    Fields,
    ResponseRecordInfo,
    Sources,
    UrlList,
    data_of,
    each,
    info_of,
    is_bare_failure,
)
from kie2s3.families.base import JsonObject


class VeoUrls(Fields):
    """Where Veo lists files: the callback's `info`, record-info's `response`; 4K adds thumbnails."""

    result_urls: UrlList = ()
    origin_urls: UrlList = ()  # the uncropped video, when the aspect ratio is not 16:9
    image_urls: UrlList = ()

    def sources(self) -> Sources:
        return [
            *each(self.result_urls, "video"),
            *each(self.origin_urls, "video"),
            *each(self.image_urls, "image"),
        ]


class _VeoData(VeoUrls):
    """`info` on the page shapes; the 4K OpenAPI schema lists `result_urls`, `image_urls` in `data` itself."""

    info: VeoUrls | None = None  # absent on failure

    def sources(self) -> Sources:
        return [*(self.info.sources() if self.info else ()), *super().sources()]


class VeoRecordInfo(ResponseRecordInfo[VeoUrls]):
    """`GET /api/v1/veo/record-info` data: `successFlag`; URLs in `response` (the quickstart: in `data`)."""

    result_urls: UrlList = ()

    def sources(self) -> Sources:
        return [*super().sources(), *each(self.result_urls, "video")]


def has_4k_marks(body: JsonObject) -> bool:
    """Only the 4K upgrade callback lists thumbnails (`imageUrls`, `image_urls`) or `media_ids`."""
    data = data_of(body)
    return "imageUrls" in info_of(body) or any(k in data for k in ("result_urls", "image_urls", "media_ids"))


def has_veo_shape(body: JsonObject) -> bool:
    """A Veo success (`info` with result or origin URLs) or failure (`fallbackFlag`, no `info`)."""
    info = info_of(body)
    return "resultUrls" in info or "originUrls" in info or "fallbackFlag" in data_of(body)


class VeoParser(Family):
    """Veo 3.1 generate/extend: one final callback; a failure has no `info`."""

    name = "veo"
    record_info_path = "/api/v1/veo/record-info"
    callback_model = Callback[_VeoData]
    record_model = VeoRecordInfo

    def matches(self, body: JsonObject) -> bool:
        plain = "taskId" in data_of(body) and has_veo_shape(body) and not has_4k_marks(body)
        return plain or is_bare_failure(body)
