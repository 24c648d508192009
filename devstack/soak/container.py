"""One invocation of the function in a Lambda container of its own: the soak's callbacks during an
outage (a container busy with botocore's backoff for seconds does not hold up the others, as on
Lambda, where concurrent requests start more containers).

`python -m devstack.soak.container` with the function's environment and KIE2S3_SOAK_AWS_FAULTS
(devstack.soak.aws_faults, its outage included) reads one event as JSON on stdin and prints
`SOAK-ANSWER {json}` (the function's answer) and, at exit, `SOAK-FAULTS {json}`.
"""

import json
import sys

from devstack.lambda_runtime import invoke
from devstack.soak.aws_faults import install_from_env


def main() -> int:
    """Invoke `app.lambda_handler` with the event on stdin; print its answer."""
    install_from_env()
    event = json.loads(sys.stdin.read())
    answer = invoke(event)
    print("SOAK-ANSWER " + json.dumps(answer), file=sys.__stdout__, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
