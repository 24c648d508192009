"""The Powertools Logger, Tracer and Metrics every module shares (service and namespace come from env)."""

import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer

# A request that records no metric (GET /tasks) is normal here, not worth a warning in every log.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

logger = Logger()
tracer = Tracer()
metrics = Metrics()
