"""The SAM CLI's own Python, for what only SAM's code can say: its transform, cfn-lint on what it
gives, its parameter parser (samtranslator, cfn-lint and the SAM CLI live in venvs of their own under
.tools, see the Makefile's $(SAM) and $(CFN_LINT)).

A script's answer depends on nothing but the script and its input, and each run costs seconds of
CPU: within one test run, the xdist workers share it through a directory of the run's own (the
first worker to ask runs it, under a lock, and the others read its answer).
"""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from devstack.template import REPO_ROOT

SAM_PYTHON = REPO_ROOT / ".tools" / "sam" / "bin" / "python"
_SHARED_PREFIX = "kie2s3-sam-"
_STALE_SECONDS = 3600


def sam_python() -> str:
    """The SAM CLI venv's interpreter; the test fails, saying how to install it, when it is missing."""
    if not SAM_PYTHON.exists():
        pytest.fail(f"{SAM_PYTHON} is missing: `make dev` installs the SAM CLI")
    return str(SAM_PYTHON)


def _run(script: str, stdin: str, timeout: float) -> str:
    completed = subprocess.run(
        [sam_python(), "-c", script],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
        timeout=timeout,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def _shared_directory(run: str) -> Path:
    """This test run's directory, created on first use; other runs' left an hour ago are removed."""
    root = Path(tempfile.gettempdir())
    directory = root / f"{_SHARED_PREFIX}{run}"
    if not directory.exists():
        for old in root.glob(f"{_SHARED_PREFIX}*"):
            if old != directory and time.time() - old.stat().st_mtime > _STALE_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
        directory.mkdir(exist_ok=True)
    return directory


def in_sam_venv(script: str, payload: Any, timeout: float = 300) -> str:
    """What `script` prints when SAM's Python runs it with `payload` as JSON on its stdin: run once
    per test run for the same script and payload, whichever worker asks first."""
    stdin = json.dumps(payload)
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:  # one process: the callers' own caches keep each answer
        return _run(script, stdin, timeout)
    key = hashlib.sha256(f"{script}\0{stdin}".encode()).hexdigest()
    answer = _shared_directory(run) / f"{key}.out"
    with (answer.with_suffix(".lock")).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not answer.exists():
            written = answer.with_suffix(".partial")
            written.write_text(_run(script, stdin, timeout))
            written.replace(answer)
        return answer.read_text()
