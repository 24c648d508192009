"""What a deploy meets in flight (docs/upgrade.md): queued jobs and ledger items written by the version
before, and — after a rollback — by the version after. Both must still parse."""

from typing import Any

import pytest
from pydantic import BaseModel

from kie2s3.models import CopyJob, FileItem, ForwardJob, TaskItem, TransferResult

# The fields without a default, as deployed today. A new field needs a default (None, or the value that
# means "written before this field existed"): a job queued or an item written without it must parse.
REQUIRED = {
    CopyJob: {"task_id", "index", "source", "kind", "family", "key"},
    ForwardJob: {"task_id", "raw_key", "arrived_at"},
    TaskItem: {"task_id", "family", "outcome", "created_at", "updated_at"},
    FileItem: {"task_id", "index", "source", "kind", "key", "updated_at"},
    TransferResult: {"bucket", "key", "bytes", "sha256", "content_type"},  # the idempotency record's
}
WRITTEN: dict[type[BaseModel], dict[str, Any]] = {
    CopyJob: {
        "task_id": "t",
        "index": 0,
        "source": "https://x/a.png",
        "kind": "image",
        "family": "market",
        "key": "k",
    },
    ForwardJob: {"task_id": "t", "raw_key": "k", "arrived_at": 1.0},
    TaskItem: {
        "task_id": "t",
        "family": "market",
        "outcome": "success",
        "created_at": "c",
        "updated_at": "u",
    },
    FileItem: {
        "task_id": "t",
        "index": 0,
        "source": "https://x/a.png",
        "kind": "image",
        "key": "k",
        "updated_at": "u",
    },
    TransferResult: {"bucket": "b", "key": "k", "bytes": 1, "sha256": "0" * 64, "content_type": "image/png"},
}


@pytest.mark.parametrize("model", list(REQUIRED), ids=lambda m: m.__name__)
def test_a_format_in_flight_gains_fields_only_with_a_default(model: type[BaseModel]) -> None:
    assert {name for name, field in model.model_fields.items() if field.is_required()} == REQUIRED[model]


@pytest.mark.parametrize("model", list(REQUIRED), ids=lambda m: m.__name__)
def test_a_format_in_flight_reads_what_the_next_version_wrote(model: type[BaseModel]) -> None:
    # A rollback meets jobs and items with fields it does not know: it ignores them.
    parsed = model.model_validate({**WRITTEN[model], "a_field_from_the_next_version": {"any": "value"}})
    assert parsed.model_dump(include=set(WRITTEN[model])) == model.model_validate(WRITTEN[model]).model_dump(
        include=set(WRITTEN[model])
    )
