"""The package layout shows the architecture: five layers, imports point one way.

``numerics`` ← ``theory`` ← ``experiments`` ← ``pipeline`` ← ``cli``. A module may
import from its own layer or the layers below, never above; every module lives in a
layer's folder (the package's top holds only ``__init__.py`` and ``__main__.py``).
"""

import ast
from pathlib import Path

import bhyt_theory

ORDER = ["numerics", "theory", "experiments", "pipeline", "cli"]
TOP_LEVEL = {"__init__.py", "__main__.py"}
PACKAGE = Path(bhyt_theory.__file__).parent


def layer_of(path: Path) -> str | None:
    """The layer of a module file: its first folder under the package (None at the top)."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


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
    """The layer a ``bhyt_theory…`` name points into (None for the package root and its
    ``__version__``)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ORDER else None


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def upward_imports(path: Path, source: str | None = None) -> list[str]:
    here = layer_of(path)
    return [
        f"{module_name(path)} ({here}) imports {name} ({layer_of_module(name)})"
        for name in imported_modules(path, source)
        if here is not None and layer_of_module(name) is not None
        and ORDER.index(layer_of_module(name)) > ORDER.index(here)
    ]


def test_the_top_level_holds_no_module():
    top = {p.name for p in modules() if layer_of(p) is None}
    assert top <= TOP_LEVEL, f"modules outside a layer folder: {sorted(top - TOP_LEVEL)}"


def test_every_folder_is_a_layer():
    folders = {layer_of(p) for p in modules()} - {None}
    assert folders <= set(ORDER), f"unknown layer folders: {folders - set(ORDER)}"
    assert set(ORDER) <= folders, f"layers without a folder: {set(ORDER) - folders}"


def test_imports_point_only_downwards():
    upward = [line for path in modules() for line in upward_imports(path)]
    assert not upward, upward


def test_the_package_root_imports_no_layer():
    """``bhyt_theory/__init__.py`` stays light: importing the package loads no layer."""
    init = PACKAGE / "__init__.py"
    assert not {n for n in imported_modules(init) if layer_of_module(n)}


def test_the_check_detects_an_upward_import():
    """Each pair of layers in the wrong order is reported (the test can fail)."""
    for lower, upper in [("numerics", "theory"), ("theory", "experiments"), ("experiments", "pipeline"),
                         ("pipeline", "cli"), ("numerics", "cli")]:
        path = next(p for p in modules() if layer_of(p) == lower and p.name != "__init__.py")
        found = upward_imports(path, f"from bhyt_theory.{upper} import something\n")
        assert found, (lower, upper)
    norms = PACKAGE / "numerics" / "norms.py"
    assert upward_imports(norms, "from ..experiments.montecarlo import sweep\n")
    assert not upward_imports(PACKAGE / "cli" / "main.py", "from ..numerics.norms import bhyt\n")
