"""Moving one file's bytes from kie.ai into the archive: link, source, then one PUT, a stream or ranged parts."""

from kie2s3.transfer.objects import object_metadata, object_tags
from kie2s3.transfer.pipeline import PipelineShape
from kie2s3.transfer.run import Transfer

__all__ = ["PipelineShape", "Transfer", "object_metadata", "object_tags"]
