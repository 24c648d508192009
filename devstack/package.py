"""The runtime-only package the local stack runs: the function's code (`CodeUri`) and its layer.

What `sam build` deploys, built for this machine's architecture without the SAM CLI: the layer is
`layers/requirements.txt` installed with uv for Python 3.13 on manylinux (binary wheels only, as
`sam build` takes them), the code a copy of `src/handler/`. Both are cached under
`.devstack/package/` by the hash of what they are built from, so the layer is built once per
requirements and a run pays only for copying the code when it changed. Each is compiled to
bytecode at build time: the functions cannot write `__pycache__` into their read-only package.
`devstack.sandbox` runs them, `devstack.lambda_bootstrap` is the runtime inside.
"""

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from devstack.running import REPO_ROOT

CODE_URI: Final = REPO_ROOT / "src" / "handler"  # template.yaml's Globals.Function.CodeUri
REQUIREMENTS: Final = REPO_ROOT / "layers" / "requirements.txt"  # the layer's ContentUri, as sam builds it
CACHE_DIR: Final = REPO_ROOT / ".devstack" / "package"
PYTHON_VERSION: Final = "3.13"  # template.yaml's Runtime
# The wheels' platform for each host architecture (sam build takes manylinux2014 wheels).
PLATFORMS: Final = {"x86_64": "x86_64-manylinux2014", "aarch64": "aarch64-manylinux2014"}
PLATFORMS_ALIASES: Final = {"amd64": "x86_64", "arm64": "aarch64"}
# What Lambda's Python runtime puts on the path besides the standard library (its own boto3, in
# /var/runtime): the layer pins every one of them, so the layer's copy is the one imported there
# and the local run needs no copy of the runtime's. tests/unit/test_package.py keeps that true.
RUNTIME_PROVIDED: Final = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")
# A package not rebuilt for this long is removed when another is built (a running stack uses its own).
STALE_SECONDS: Final = 86400
UV: Final = REPO_ROOT / ".tools" / "uv" / "bin" / "uv"


@dataclass(frozen=True)
class Package:
    """A built package: the code (LAMBDA_TASK_ROOT, /var/task) and the layer (/opt: python/ inside)."""

    code: Path
    layer: Path

    @property
    def layer_paths(self) -> list[Path]:
        """The layer's directories on the runtime's path, in Lambda's order for Python."""
        return [
            self.layer / "python" / "lib" / f"python{PYTHON_VERSION}" / "site-packages",
            self.layer / "python",
        ]


def interpreter() -> str:
    """The Python 3.13 the functions run on: the base interpreter of this venv, never the venv itself
    (whose site-packages hold the whole development environment)."""
    base = getattr(sys, "_base_executable", "") or sys.executable
    return str(Path(base).resolve())


def host_platform() -> str:
    """The wheels' platform tag for this machine's architecture."""
    machine = platform.machine().lower()
    machine = PLATFORMS_ALIASES.get(machine, machine)
    if machine not in PLATFORMS:
        raise RuntimeError(f"no Lambda architecture for this machine's {machine}: x86_64 or arm64 only")
    return PLATFORMS[machine]


def _tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _read_only(root: Path) -> None:
    """No file of the package is writable, by its owner either (root is kept out by a read-only mount:
    devstack.sandbox); its directories stay the owner's, so that `rm -rf .devstack` works."""
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o222)


def _built(target: Path, build: Callable[[Path], None]) -> Path:
    """`target`, built by `build` into a temporary sibling and renamed into place (concurrent runs
    never see half a package); siblings of the same kind unused for a day are removed."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(scratch)
        _compile(scratch)
        _read_only(scratch)
        scratch.chmod(0o755)  # mkdtemp's is 0700
        try:
            scratch.rename(target)
        except OSError:  # another run built it first
            shutil.rmtree(scratch, ignore_errors=True)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    kind = target.name.rsplit("-", 1)[0]
    for stale in target.parent.glob(f"{kind}-*"):
        if stale != target and time.time() - stale.stat().st_mtime > STALE_SECONDS:
            shutil.rmtree(stale, ignore_errors=True)
    return target


def _compile(root: Path) -> None:
    subprocess.run(
        [interpreter(), "-I", "-m", "compileall", "-q", "-j", "0", str(root)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


class _Layer:
    def __init__(self, requirements: Path, platform_tag: str) -> None:
        self.requirements = requirements
        self.platform_tag = platform_tag

    def __call__(self, into: Path) -> None:
        uv = os.environ.get("KIE2S3_UV") or str(UV)
        try:
            subprocess.run(
                [
                    uv,
                    "pip",
                    "install",
                    "--quiet",
                    "--target",
                    str(into / "python"),
                    "--requirements",
                    str(self.requirements),
                    "--python-version",
                    PYTHON_VERSION,
                    "--python-platform",
                    self.platform_tag,
                    "--only-binary",
                    ":all:",
                ],
                check=True,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
            )
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"building the layer failed: {(exc.stderr or exc.stdout).strip()}") from exc
        except FileNotFoundError as exc:
            raise RuntimeError(f"building the layer needs uv ({uv}): make dev installs it") from exc


class _Code:
    def __init__(self, source: Path) -> None:
        self.source = source

    def __call__(self, into: Path) -> None:
        shutil.copytree(self.source, into, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))


def build(*, code: Path = CODE_URI, requirements: Path = REQUIREMENTS, cache: Path = CACHE_DIR) -> Package:
    """The package of `code` with the layer of `requirements`, built once each (cached by content)."""
    platform_tag = host_platform()
    requirements_hash = hashlib.sha256(
        requirements.read_bytes() + f"\0{platform_tag}\0{PYTHON_VERSION}".encode()
    ).hexdigest()[:16]
    layer = _built(cache / f"layer-{requirements_hash}", _Layer(requirements, platform_tag))
    code_dir = _built(cache / f"code-{_tree_hash(code)}", _Code(code))
    return Package(code=code_dir, layer=layer)
