"""Adapters: the only modules that talk to AWS, kie.ai or source hosts (boto3 and urllib3 live here)."""
