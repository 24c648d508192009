"""Each make target installs what it runs: `make demo`, the local stack and the deploy commands get the
runtime and the `commands` group from uv.lock, not the development toolchain, and that is enough for
every module they run (read from the source: its imports, and the devstack modules it starts)."""

import ast
import functools
import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMANDS_ENV = "$(VENV)/.synced-commands"
# Where the code of a module may be: the repository (devstack, tests) and the function's CodeUri.
SOURCE_ROOTS = (ROOT, ROOT / "src" / "handler")
DEVSTACK_MODULE = re.compile(r"devstack(\.\w+)+")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def _source(module: str) -> Path | None:
    for base in SOURCE_ROOTS:
        path = base.joinpath(*module.split("."))
        if path.with_suffix(".py").is_file():
            return path.with_suffix(".py")
        if (path / "__init__.py").is_file():
            return path / "__init__.py"
    return None


def _type_checking_only(tree: ast.Module) -> set[int]:
    return {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }


@functools.cache
def _imports(module: str, path: Path) -> tuple[str, ...]:
    return tuple(_named(module, path))


def _named(module: str, path: Path) -> Iterator[str]:
    """The modules `module` imports (lazily too, not under TYPE_CHECKING), and the devstack modules it
    names in a string (the processes it starts: `python -m devstack.moto_server`)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = _type_checking_only(tree)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and DEVSTACK_MODULE.fullmatch(node.value)
            and _source(node.value)
        ):
            yield node.value


def third_party(module: str) -> dict[str, str]:
    """The top-level third-party modules `module` needs, each with the project module that imports it."""
    seen: set[str] = set()
    found: dict[str, str] = {}
    todo = [(module, module)]
    while todo:
        name, importer = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        top = name.partition(".")[0]
        path = _source(name)
        if path is None:
            if top not in sys.stdlib_module_names and _source(top) is None:
                found.setdefault(top, importer)
            continue
        for imported in _imports(name, path):
            parts = imported.split(".")
            todo.extend((".".join(parts[:n]), name) for n in range(1, len(parts) + 1))
    return found


def installed_by(groups: list[str]) -> set[str]:
    """The distributions `uv sync --no-dev --group <group>...` installs: the project's dependencies and
    the groups', with their extras, and theirs, read from uv.lock (markers ignored: a superset)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    packages = {_normal(p["name"]): p for p in lock["package"]}
    project = packages["kie2s3"]
    todo = list(project.get("dependencies", []))
    for group in groups:
        todo += project["dev-dependencies"][group]
    found: set[str] = set()
    expanded: set[tuple[str, str]] = set()  # (package, extra), "" for its plain dependencies
    while todo:
        requirement = todo.pop()
        name = _normal(requirement["name"])
        found.add(name)
        for extra in ["", *requirement.get("extra", [])]:
            if (name, extra) not in expanded:
                expanded.add((name, extra))
                package = packages[name]
                todo += (
                    package.get("optional-dependencies", {}).get(extra, [])
                    if extra
                    else package.get("dependencies", [])
                )
    return found


def makefile_targets_on(prerequisite: str) -> dict[str, list[str]]:
    """Each target that has `prerequisite`, with the devstack modules its recipe runs (`-m devstack.x`)."""
    targets: dict[str, list[str]] = {}
    current = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        rule = re.match(r"^([a-zA-Z0-9_-]+):(?!=)(.*)", line)
        if rule:
            current = rule.group(1) if prerequisite in rule.group(2).split("##")[0] else None
            if current:
                targets[current] = []
        elif current and line.startswith("\t"):
            targets[current] += re.findall(r"-m (devstack\.\w+)", line)
        elif not line.startswith("\t"):
            current = None
    return targets


def make_dry_run(*args: str, venv: Path) -> list[str]:
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", f"VENV={venv}", *args],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_make_demo_installs_the_runtime_and_the_commands_group_not_the_toolchain(tmp_path: Path) -> None:
    syncs = [line for line in make_dry_run("demo", venv=tmp_path / "venv") if " sync " in line]
    assert len(syncs) == 1, syncs
    assert syncs[0].endswith("sync --frozen --inexact --no-dev --group commands")
    assert f'UV_PROJECT_ENVIRONMENT="{tmp_path / "venv"}"' in syncs[0]


def test_make_test_still_installs_the_whole_toolchain(tmp_path: Path) -> None:
    syncs = [line for line in make_dry_run("unit", venv=tmp_path / "venv") if " sync " in line]
    assert [line.rpartition(" sync ")[2] for line in syncs] == ["--frozen"]


def test_the_commands_group_is_part_of_the_toolchain() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert {"include-group": "commands"} in project["dependency-groups"]["dev"]


@pytest.fixture(scope="module")
def commands_targets() -> dict[str, list[str]]:
    return makefile_targets_on(COMMANDS_ENV)


def test_the_local_stack_and_deploy_commands_install_the_commands_group(
    commands_targets: dict[str, list[str]],
) -> None:
    assert {"demo", "up", "invoke", "callback", "preflight", "deploy", "logs"} <= set(commands_targets)
    assert commands_targets["demo"] == ["devstack.demo"]


def test_what_each_commands_target_runs_is_installed_by_the_commands_group(
    commands_targets: dict[str, list[str]],
) -> None:
    installed = installed_by(["commands"])
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for target, modules in sorted(commands_targets.items()):
        for module in modules:
            for top, importer in sorted(third_party(module).items()):
                names = {_normal(d) for d in distributions.get(top, [])}
                if not names & installed:
                    missing.append(f"make {target}: {importer} imports {top} ({', '.join(names) or '?'})")
    assert missing == []


def test_the_import_reader_sees_lazy_imports_and_started_processes() -> None:
    """The reader of the tests above finds moto through the process the local stack starts, and
    matplotlib through bench's lazy import: the commands group lacks the latter."""
    assert third_party("devstack.demo")["moto"] == "devstack.moto_server"
    assert "matplotlib" in third_party("devstack.bench")
    assert "matplotlib" not in installed_by(["commands"])
    assert {"moto", "pyyaml", "cryptography", "boto3", "pydantic"} <= installed_by(["commands"])
