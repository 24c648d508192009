"""Loaded at start by a moto server whose PYTHONPATH names this directory: each object S3 stores
(PutObject, CompleteMultipartUpload) waits KIE2S3_TEST_S3_WRITE_PAUSE_SECONDS before it is written,
after the request's `If-None-Match` was checked, so that a second create of the key meets the first
under way, unless the server makes each conditional write whole (devstack.moto_server)."""

import os
import time
from typing import Any

from moto.s3.models import S3Backend

_PAUSE_SECONDS = float(os.environ["KIE2S3_TEST_S3_WRITE_PAUSE_SECONDS"])
_put_object = S3Backend.put_object


def _slow_put_object(self: Any, *args: Any, **kwargs: Any) -> Any:
    time.sleep(_PAUSE_SECONDS)
    return _put_object(self, *args, **kwargs)


S3Backend.put_object = _slow_put_object  # type: ignore[method-assign]
