"""The project's Markdown as tests read it: README.md and docs/*.md, sections by heading, links and anchors."""

import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADING = re.compile(r"^(#{1,6}) +(.+?) *#* *$")
FENCE = re.compile(r"^ *(```|~~~)")
CODE_SPAN = re.compile(r"`[^`]*`")
# [text](target) or ![alt](target), the text possibly holding code spans; an optional "title" after the target.
LINK = re.compile(r"!?\[((?:[^\[\]`]|`[^`]*`)*)\]\(([^()\s]+)(?: +\"[^\"]*\")?\)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", flags=re.I)  # https:, mailto:, …


def pages(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("**/*.md"))]


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def headings(text: str) -> list[tuple[int, str]]:
    """(level, text) of every ATX heading outside code blocks, in order."""
    found = []
    for _, line in prose_lines(text):
        match = HEADING.match(line)
        if match:
            found.append((len(match.group(1)), match.group(2)))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text as rendered, lower-case, punctuation dropped, spaces to '-'."""
    rendered = LINK.sub(r"\1", heading).replace("`", "").replace("*", "")
    kept = re.sub(r"[^\w\- ]", "", rendered.lower())
    return kept.replace(" ", "-")


def anchors(text: str) -> list[str]:
    """The anchors of a page's headings, in order; a repeated one suffixed -1, -2, … as GitHub does."""
    seen: dict[str, int] = {}
    found = []
    for _, heading in headings(text):
        base = anchor = slug(heading)
        while anchor in seen:
            seen[base] += 1
            anchor = f"{base}-{seen[base]}"
        seen[anchor] = 0
        found.append(anchor)
    return found


def section(page: str, heading: str, root: Path = ROOT) -> str:
    """The text under a heading line (`## Parameters`) of a page, up to the next heading of its level or above."""
    text = (root / page).read_text()
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines(keepends=True)
    prose = dict(prose_lines(text))
    starts = [n for n, line in prose.items() if line.rstrip() == heading]
    if len(starts) != 1:
        raise LookupError(f"{page}: {len(starts)} headings {heading!r}")
    end = len(lines)
    for number, line in prose.items():
        match = HEADING.match(line)
        if number > starts[0] and match and len(match.group(1)) <= level:
            end = number - 1
            break
    return "".join(lines[starts[0] : end])


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every Markdown link outside code blocks and code spans, its text on one
    line or several."""
    prose = dict(prose_lines(text))
    kept = "\n".join(prose.get(number, "") for number in range(1, len(text.splitlines()) + 1))
    spans = [match.span() for match in CODE_SPAN.finditer(kept)]
    found = []
    for match in LINK.finditer(kept):
        if not any(start < match.start() < end for start, end in spans):
            found.append((kept.count("\n", 0, match.start()) + 1, match.group(2)))
    return found


def broken_links(root: Path = ROOT) -> list[str]:
    """Every relative link of README.md and docs/ whose file, or whose #anchor in it, does not exist."""
    broken = []
    for page in pages(root):
        for number, target in links(page.read_text()):
            if EXTERNAL.match(target):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(root)}:{number}: {target}"
            if not resolved.exists():
                broken.append(f"{where}: no such file")
            elif anchor and (resolved.suffix != ".md" or anchor not in anchors(resolved.read_text())):
                broken.append(f"{where}: no such anchor")
    return broken
