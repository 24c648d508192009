"""4o Image callbacks: `data.taskId` and `data.info.result_urls` (snake_case; no `info` on failure)."""

from typing import ClassVar

from kie2s3.families._common import (
    FLAG_STATES,
    Callback,
    Family,
    Fields,
    InInfo,
    ResponseRecordInfo,
    Sources,
    StatusTable,
    UrlList,
    each,
    info_of,
    is_bare_failure,
)
from kie2s3.families.base import JsonObject
from kie2s3.models import Outcome


class _Gpt4oUrls(Fields):
    """`info.result_urls` in callbacks, `response.resultUrls` in record-info."""

    result_urls: UrlList = ()

    def sources(self) -> Sources:
        return each(self.result_urls, "image")


class Gpt4oRecordInfo(ResponseRecordInfo[_Gpt4oUrls]):
    """`GET /api/v1/gpt4o-image/record-info` data: `status` (else `successFlag`)."""

    STATES: ClassVar[StatusTable] = {
        **FLAG_STATES,
        "SUCCESS": Outcome.SUCCESS,
        "GENERATING": Outcome.NOT_FINAL,
        "CREATE_TASK_FAILED": Outcome.FAILED,
        "GENERATE_FAILED": Outcome.FAILED,
    }

    status: str | None = None

    def status_value(self) -> object:
        return self.status if self.status is not None else self.success_flag


class Gpt4oParser(Family):
    """4o Image: one final callback; a bare `{taskId}` failure is recorded as 4o only when hinted."""

    name = "gpt4o"
    record_info_path = "/api/v1/gpt4o-image/record-info"
    callback_model = Callback[InInfo[_Gpt4oUrls]]
    record_model = Gpt4oRecordInfo

    def matches(self, body: JsonObject) -> bool:
        return "result_urls" in info_of(body) or is_bare_failure(body)
