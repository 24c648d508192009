"""Lambda entry point (placeholder while the foundation is built)."""


def lambda_handler(event: dict, context: object) -> dict:
    return {}
