"""`make audit`: pip-audit of every pin in uv.lock, with a summary that says what could not be audited."""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def export_requirements(uv: str, into: Path) -> None:
    """Every locked package (runtime and dev), pinned with its hashes, as a requirements file."""
    options = ["--frozen", "--no-header", "--no-emit-project", "--format", "requirements-txt"]
    subprocess.run(
        [uv, "export", *options, "-o", str(into)],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def audit(requirements: Path, report: Path) -> tuple[int, str]:
    """pip-audit against PyPI's advisory data, pins and hashes taken as they are (no resolution, no pip);
    its exit status and what it said on stderr (its own verdict, which `summarise` replaces)."""
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "-r",
        str(requirements),
        "--require-hashes",
        "--disable-pip",
    ]
    command += ["--progress-spinner", "off", "--format", "json", "--output", str(report)]
    done = subprocess.run(command, check=False, stderr=subprocess.PIPE, text=True)
    return done.returncode, done.stderr


def summarise(report: Path, *, strict: bool) -> int:
    """Print the findings; non-zero on any vulnerability, and (strict) on any package not audited."""
    dependencies = json.loads(report.read_text())["dependencies"]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if d.get("skip_reason")]
    for dep in vulnerable:
        ids = ", ".join(v["id"] for v in dep["vulns"])
        print(f"VULNERABLE {dep['name']} {dep['version']}: {ids}")
    audited = len(dependencies) - len(skipped)
    if dependencies and not audited:
        print(
            f"pip-audit audited NOTHING: the vulnerability database (PyPI's /pypi/<name>/<version>/json) "
            f"answered for none of the {len(dependencies)} locked packages, e.g. {skipped[0]['skip_reason']!r};"
            " no vulnerability was looked for. Run make audit again where PyPI is reachable.",
            file=sys.stderr,
        )
        return 1 if strict else 0
    print(
        f"pip-audit: {audited} of {len(dependencies)} locked packages audited, {len(vulnerable)} vulnerable"
    )
    if skipped:
        print(
            f"pip-audit could NOT audit {len(skipped)} packages, e.g. {skipped[0]['skip_reason']!r}: "
            "its vulnerability service (PyPI's /pypi/<name>/<version>/json) had no answer for them."
            " Where it answers, `make audit AUDIT_STRICT=1` makes this an error.",
            file=sys.stderr,
        )
    return 1 if vulnerable or (strict and skipped) else 0


def main(argv: list[str] | None = None) -> int:
    """Export, audit, summarise."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uv", default="uv", help="the uv executable that reads uv.lock")
    parser.add_argument("--strict", action="store_true", help="fail when a package could not be audited")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kie2s3-audit-") as tmp:
        requirements, report = Path(tmp, "requirements.txt"), Path(tmp, "audit.json")
        export_requirements(args.uv, requirements)
        code, said = audit(requirements, report)
        if not report.exists():
            print(unreachable(said), file=sys.stderr)
            return code or 1
        return summarise(report, strict=args.strict) or code


def unreachable(said: str) -> str:
    """What to say when pip-audit wrote no report: it stopped before auditing anything (most often, the
    vulnerability database could not be reached), with the last thing it said."""
    last = [line.strip() for line in said.splitlines() if line.strip()][-2:] or ["no message"]
    return (
        "pip-audit audited NOTHING (the vulnerability database was unreachable, or it stopped early): "
        + " ".join(last)
    )


if __name__ == "__main__":
    sys.exit(main())
