"""The smallest environment the function's settings accept, for tests of the settings."""

MINIMAL_ENV = {
    "BUCKET_NAME": "archive-bucket",
    "TASKS_TABLE": "tasks",
    "IDEMPOTENCY_TABLE": "idem",
    "KIE_API_KEY_SECRET": "kie2s3/kie-api-key",
    "COPY_MODE": "inline",
}
