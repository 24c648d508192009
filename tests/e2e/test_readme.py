"""The README's "Try it locally" examples, taken from README.md and run as written against `make up`."""

import os
import re
import subprocess
from pathlib import Path

import pytest
from tests.e2e.conftest import ROOT, Target

pytestmark = pytest.mark.e2e

SECTION = "## Try it locally: `make up`"
# The test session starts and stops its own stack: these two lines are what it does itself.
LIFECYCLE = ("make up", "make down")


def readme_blocks() -> list[str]:
    """The bash blocks of the section, in order."""
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return re.findall(r"```bash\n(.*?)```", text[start : end if end > 0 else None], flags=re.S)


def run_bash(script: str, state_dir: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KIE2S3_STATE_DIR": state_dir, "HOME": str(tmp_path)}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_readme_has_the_local_examples() -> None:
    lifecycle, examples = readme_blocks()
    assert [line.split("#")[0].strip() for line in lifecycle.splitlines()][:1] == ["make up"]
    assert "make down" in lifecycle
    assert 'eval "$(make -s env)"' in examples


def test_readme_lifecycle_commands_work_on_the_running_stack(local_target: Target, tmp_path: Path) -> None:
    lifecycle, _ = readme_blocks()
    lines = [line for line in lifecycle.splitlines() if line.split("#")[0].strip() not in LIFECYCLE]
    done = run_bash("\n".join(lines), local_target.local["stateDir"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert local_target.api_url in done.stdout  # make status
    # make logs: a line a record, `time function level message …`, or the stack's own lines
    assert re.search(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ |\[local stack\] )", done.stdout, flags=re.M)


def test_readme_curl_examples_and_signing_snippet_work_verbatim(local_target: Target, tmp_path: Path) -> None:
    _, examples = readme_blocks()
    done = run_bash(examples, local_target.local["stateDir"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"message"' not in done.stdout, done.stdout  # no error document came back
    assert "/callbacks/kie -> 200" in done.stdout  # make callback
    for task_id in ("7c1e0f3ab2d94c55a1e6f0b9d2c4a871", "my-first-copy", "7b89346e3ac643d4973daa7e96e1fc21"):
        document = local_target.until_done(task_id)
        assert document["state"] == "copied", document
        for entry in document["files"]:
            assert len(local_target.stored(entry["key"])) == entry["bytes"]
    market = local_target.until_done("my-market-task")
    assert [f["state"] for f in market["files"]] == ["copied"] * 3
    assert "<Key>kie/7c1e0f3ab2d94c55a1e6f0b9d2c4a871/00.png</Key>" in done.stdout  # the S3 listing
