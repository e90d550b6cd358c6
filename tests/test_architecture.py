"""The package layout shows the architecture: imports point one way.

``numerics`` ← ``theory`` ← ``experiments`` ← top (the modules directly in
``bhyt_theory/``: report, cli, …). A module may import from its own layer or the
layers below, never above; every module lives in a layer's folder or at the top.
"""

import ast
from pathlib import Path

import bhyt_theory

ORDER = ["numerics", "theory", "experiments", "top"]
PACKAGE = Path(bhyt_theory.__file__).parent


def layer_of(path: Path) -> str:
    """The layer of a module file: its first folder under the package, or "top"."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else "top"


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE).with_suffix("")
    return ".".join(("bhyt_theory", *relative.parts)).removesuffix(".__init__")


def imported_modules(path: Path, source: str | None = None) -> set[str]:
    """Absolute names of the package modules and packages that ``path`` (or ``source``,
    read as if it were the text of ``path``) imports."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.startswith("bhyt_theory"):
                found.add(module)
                found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("bhyt_theory"))
    return found


def layer_of_module(name: str) -> str | None:
    """The layer a ``bhyt_theory…`` name points into (None for the package root itself)."""
    parts = name.split(".")
    if len(parts) < 2 or parts[1] == "__version__":
        return None
    return parts[1] if parts[1] in ORDER[:-1] else "top"


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def test_every_folder_is_a_layer():
    folders = {p.relative_to(PACKAGE).parts[0] for p in modules() if len(p.relative_to(PACKAGE).parts) > 1}
    assert folders <= set(ORDER[:-1]), f"unknown layer folders: {folders - set(ORDER)}"


def test_imports_point_only_downwards():
    upward = [
        f"{module_name(path)} ({layer_of(path)}) imports {name} ({layer_of_module(name)})"
        for path in modules()
        for name in imported_modules(path)
        if layer_of_module(name) is not None and ORDER.index(layer_of_module(name)) > ORDER.index(layer_of(path))
    ]
    assert not upward, upward


def test_the_check_detects_an_upward_import():
    """A numerics module importing from experiments is reported (the test can fail)."""
    norms = PACKAGE / "numerics" / "norms.py"
    found = imported_modules(norms, "from ..experiments.montecarlo import sweep\n")
    assert found == {"bhyt_theory.experiments.montecarlo", "bhyt_theory.experiments.montecarlo.sweep"}
    assert ORDER.index(layer_of_module("bhyt_theory.experiments.montecarlo")) > ORDER.index(layer_of(norms))
