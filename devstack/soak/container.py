"""The function in a Lambda container of its own, for the soak: one invocation (a callback during
an outage: a container busy with botocore's backoff for seconds does not hold up the others, as on
Lambda, where concurrent requests start more containers), or many one after another (`--serve`:
the events function, beside the API's container in the soak's own process).

`python -m devstack.soak.container [--serve]` with the function's environment and, optionally,
KIE2S3_SOAK_AWS_FAULTS and KIE2S3_SOAK_KILL (devstack.soak.aws_faults). Each event is one JSON line
on stdin; each answer one `SOAK-ANSWER {json}` line (`SOAK-ERROR <type>` when the handler raised)
on the original stdout, before it a `SOAK-FAILED [services]` line (the services whose AWS faults
answered that invocation), where `SOAK-KILL` and `SOAK-FAULTS` lines go too; the function's logs go
to stderr.
"""

import json
import sys

from devstack.soak.aws_faults import install_from_env


def main(argv: list[str] | None = None) -> int:
    """Invoke `app.lambda_handler` with each event on stdin (one, or every one with --serve)."""
    serve = "--serve" in (sys.argv[1:] if argv is None else argv)
    faults = install_from_env()
    answers = sys.stdout
    sys.stdout = sys.stderr  # before the handler's import: its logs are not answers
    from devstack.lambda_runtime import invoke

    for line in sys.stdin:
        if faults is not None:
            faults.scope.failed = set()
        try:
            answer = "SOAK-ANSWER " + json.dumps(invoke(json.loads(line)))
        except Exception as exc:  # a failed invocation: the caller's event source decides
            answer = f"SOAK-ERROR {type(exc).__name__}"
        failed = sorted(faults.scope.failed) if faults is not None else []
        print("SOAK-FAILED " + json.dumps(failed), file=answers)
        print(answer, file=answers, flush=True)
        if not serve:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
