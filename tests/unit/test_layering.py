"""The package's layers import one way: handlers → logic → ports ← adapters, transfer → ports.

Every import in src/handler/kie2s3 counts, wherever it stands (module top, a function, TYPE_CHECKING).
The shared modules at the package root (models, settings, errors, observability, …) sit below all.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "src" / "handler" / "kie2s3"

# What each layer may import of the package besides itself and the shared root modules ("shared").
MAY_IMPORT: dict[str, frozenset[str]] = {
    "handlers": frozenset({"logic", "adapters", "ports", "transfer", "families"}),
    "logic": frozenset({"ports", "transfer", "families"}),
    "transfer": frozenset({"ports"}),
    "adapters": frozenset({"ports"}),
    "families": frozenset(),
    "ports": frozenset(),
    "shared": frozenset(),
}
LAYERS = frozenset(MAY_IMPORT) - {"shared"}


def layer_of(module: str) -> str:
    """`kie2s3.logic.plan` → logic; `kie2s3.ports` → ports; `kie2s3.models` (or `kie2s3`) → shared."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "shared"


def _module_name(path: Path, root: Path) -> str:
    relative = path.relative_to(root.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool) -> set[str]:
    """Every kie2s3 module the source imports (`from kie2s3 import x` counts as kie2s3.x)."""
    found: set[str] = set()
    here = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from kie2s3 import logic` names a layer; `from kie2s3.logic.plan import accept` a module's name.
            found.update([f"{base}.{alias.name}" for alias in node.names] if base == "kie2s3" else [base])
    return {name for name in found if name == "kie2s3" or name.startswith("kie2s3.")}


def violations(root: Path) -> list[str]:
    """`module → imported` for each import a layer may not make."""
    lines = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        layer = layer_of(module)
        allowed = MAY_IMPORT[layer] | {layer, "shared"}
        for imported in sorted(imports_of(path.read_text(), module, path.name == "__init__.py")):
            if imported != "kie2s3" and layer_of(imported) not in allowed:
                lines.append(f"{module} ({layer}) → {imported} ({layer_of(imported)})")
    return lines


def test_layering_every_import_goes_down() -> None:
    assert violations(PACKAGE) == []


@pytest.mark.parametrize(
    ("layer", "line"),
    [
        ("logic", "from kie2s3.adapters.ledger import now_iso"),
        ("transfer", "from kie2s3.logic.ports import Source"),
        ("adapters", "from kie2s3.logic import plan"),
        ("ports", "from kie2s3.adapters.s3_store import S3Store"),
        ("families", "from kie2s3 import handlers"),
        ("shared", "import kie2s3.adapters.clients"),
        ("logic", "from ..handlers import wiring"),
    ],
)
def test_layering_finds_an_upward_import(tmp_path: Path, layer: str, line: str) -> None:
    package = tmp_path / "kie2s3"
    where = package / "m.py" if layer == "shared" else package / layer / "m.py"
    if layer == "ports":
        where = package / "ports.py"
    where.parent.mkdir(parents=True)
    where.write_text(f"def f() -> None:\n    {line}\n")

    [found] = violations(package)
    assert found.startswith(
        f"kie2s3.{where.relative_to(package).with_suffix('').as_posix().replace('/', '.')} "
    )


def test_layering_allows_the_downward_imports(tmp_path: Path) -> None:
    package = tmp_path / "kie2s3"
    (package / "logic").mkdir(parents=True)
    (package / "logic" / "m.py").write_text(
        "from kie2s3.ports import Ledger\nfrom kie2s3.transfer import Transfer\nfrom kie2s3 import models\n"
        "from . import plan\n"
    )

    assert violations(package) == []
