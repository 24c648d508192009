"""The README's local examples list the archive only once the copies they asked for are copied:
in queue mode `POST /copies` answers "pending" and the copy worker runs after."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
LISTING = "list-type=2"


def examples() -> str:
    """The README's bash block that starts with `eval "$(make -s env)"` (tests/e2e runs it verbatim)."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    [block] = [b for b in blocks if b.startswith('eval "$(make -s env)"')]
    return block


def test_readme_listing_waits_for_every_copy_it_lists() -> None:
    block = examples()
    before = block[: block.index(LISTING)]
    asked = re.findall(r'POST "\$API/copies".*?"taskId": "([^"]+)"', before, flags=re.S)
    assert asked, "the examples ask for copies before listing"
    last_post = before.rindex('POST "$API/copies"')
    waits = before[last_post:]
    loop = re.search(r"for task in ([^;]+); do\n(.*?)\ndone", waits, flags=re.S)
    assert loop is not None, "no wait between the last POST /copies and the listing"
    assert loop.group(1).split() == asked
    assert '"$API/tasks/$task"' in loop.group(2)
    assert "= copied" in loop.group(2)
