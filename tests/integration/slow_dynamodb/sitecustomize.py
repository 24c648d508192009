"""Loaded at start by a moto server whose PYTHONPATH names this directory: each SET action of a DynamoDB
UpdateExpression takes KIE2S3_TEST_SET_PAUSE_SECONDS more, so that a request arriving while an update
is under way meets it half applied, unless the server runs each request whole (devstack.moto_server)."""

import os
import time
from typing import Any

from moto.dynamodb.parsing.executors import SetExecutor

_PAUSE_SECONDS = float(os.environ["KIE2S3_TEST_SET_PAUSE_SECONDS"])
_execute = SetExecutor.execute


def _slow_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
    done = _execute(self, *args, **kwargs)
    time.sleep(_PAUSE_SECONDS)
    return done


SetExecutor.execute = _slow_execute  # type: ignore[method-assign]
