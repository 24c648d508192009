"""Loaded at start by a moto server whose PYTHONPATH names this directory, to slow its writes down so
that a second request always arrives while the first is under way, unless the server holds it until
the first is done (devstack.moto_server makes them whole):
- KIE2S3_TEST_SET_PAUSE_SECONDS: each SET action of a DynamoDB UpdateExpression takes this much more;
- KIE2S3_TEST_S3_WRITE_PAUSE_SECONDS: each object S3 stores (PutObject, CompleteMultipartUpload)
  waits this long before it is written, after the request's `If-None-Match` was checked.
"""

import os
import time
from typing import Any

from moto.dynamodb.parsing.executors import SetExecutor
from moto.s3.models import S3Backend

_SET_PAUSE_SECONDS = float(os.environ.get("KIE2S3_TEST_SET_PAUSE_SECONDS", "0"))
_WRITE_PAUSE_SECONDS = float(os.environ.get("KIE2S3_TEST_S3_WRITE_PAUSE_SECONDS", "0"))
_execute = SetExecutor.execute
_put_object = S3Backend.put_object


def _slow_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
    done = _execute(self, *args, **kwargs)
    time.sleep(_SET_PAUSE_SECONDS)
    return done


def _slow_put_object(self: Any, *args: Any, **kwargs: Any) -> Any:
    time.sleep(_WRITE_PAUSE_SECONDS)
    return _put_object(self, *args, **kwargs)


SetExecutor.execute = _slow_execute  # type: ignore[method-assign]
S3Backend.put_object = _slow_put_object  # type: ignore[method-assign]
