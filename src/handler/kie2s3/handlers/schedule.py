"""The scheduled reconciler: one pass over the ledger's unfinished items."""

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kie2s3.handlers.wiring import get_services
from kie2s3.logic.reconcile import reconcile, report_answer


def handle_schedule(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Run one reconcile pass within the invocation's time; answer with what it did (within Lambda's
    6 MB: report_answer)."""
    services = get_services()
    services.guard.register_lambda_context(context)
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000
    return report_answer(reconcile(services, deadline=deadline))
