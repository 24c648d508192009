"""The complexity gate: no function above its tree's limit, counted as radon counts (`radon cc --json`).

xenon, radon's own gate, grades by rank letter (B is up to 10, C up to 20), which cannot say 12 or 15;
this reads radon's figures and applies the limits themselves. Standard library only:

    radon cc --json src devstack | python -m devstack.complexity src=12 devstack=15
"""

import argparse
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import PurePath
from typing import Any


def _functions(blocks: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Every function and method in radon's blocks of one file, closures included (classes are not
    functions: radon's figure for a class sums its methods)."""
    for block in blocks:
        if block.get("type") in ("function", "method"):
            yield block
            yield from _functions(block.get("closures", []))


def _name(block: Mapping[str, Any]) -> str:
    return f"{block['classname']}.{block['name']}" if block.get("classname") else str(block["name"])


def findings(report: Mapping[str, Any], limits: Mapping[str, int]) -> list[str]:
    """One line per function above the limit of the tree it is in (`path:line name complexity > limit`);
    a file radon could not read is a finding too, and so is a file under no limit."""
    lines = []
    for path, blocks in sorted(report.items()):
        tree = next((t for t in limits if PurePath(path).is_relative_to(t)), None)
        if tree is None:
            lines.append(f"{path}: under no limit (give its tree one)")
        elif isinstance(blocks, dict):  # radon's answer for a file it could not parse
            lines.append(f"{path}: radon could not read it: {blocks.get('error')}")
        else:
            lines.extend(
                f"{path}:{block['lineno']} {_name(block)} {block['complexity']} > {limits[tree]}"
                for block in _functions(blocks)
                if block["complexity"] > limits[tree]
            )
    return lines


def _limit(text: str) -> tuple[str, int]:
    tree, _, limit = text.partition("=")
    if not tree or not limit.isdigit():
        raise argparse.ArgumentTypeError(f"give TREE=LIMIT, e.g. src=12, not {text!r}")
    return tree, int(limit)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("limits", nargs="+", type=_limit, metavar="TREE=LIMIT")
    args = parser.parse_args(argv)
    found = findings(json.load(sys.stdin), dict(args.limits))
    for line in found:
        print(line)
    print(f"complexity: {len(found)} function(s) above the limit" if found else "complexity: ok")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
