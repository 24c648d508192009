"""The Powertools Logger, Tracer and Metrics every module shares (service and namespace come from env)."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
