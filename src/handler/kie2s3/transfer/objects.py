"""What an archived object carries besides its bytes: the metadata and tags users find it by."""

from kie2s3.models import CopyJob
from kie2s3.sources import canonical_url

# S3 holds at most 2 KB of user metadata per object: the longest values are cut to keep within it.
_MAX_MODEL_METADATA_CHARS = 128
_MAX_SOURCE_METADATA_CHARS = 1024


def _model(job: CopyJob) -> str:
    """Market's model name, else the family (jobs queued before the model was sent have none)."""
    return job.model or job.family


def object_metadata(job: CopyJob) -> dict[str, str]:
    """The `x-amz-meta-*` values users search objects by (the store makes them ASCII)."""
    return {
        "task-id": job.task_id,
        "family": job.family,
        "model": _model(job)[:_MAX_MODEL_METADATA_CHARS],
        "file-index": str(job.index),
        "source": canonical_url(job.source)[:_MAX_SOURCE_METADATA_CHARS],
    }


def object_tags(job: CopyJob, sha256: str) -> dict[str, str]:
    """Every tag of an archived object, for lifecycle rules and Storage Lens. A tag write replaces
    the whole set, so every write sends all of them."""
    return {"sha256": sha256, "kie2s3:family": job.family, "kie2s3:model": _model(job)}
