"""The package layout shows the architecture: imports point one way.

numerics ← theory ← experiments ← top. A module may import from its own layer
or the layers below, never above; every module must be placed in a layer.
"""

import ast
from pathlib import Path

import bhyt_theory

LAYERS = {
    "numerics": {"norms", "model", "probes", "gaussian"},
    "theory": {"symbolic", "bounds", "meanfield"},
    "experiments": {"montecarlo", "growth", "variance_study", "jacobian", "tightness", "bench"},
    "top": {"report", "cli"},
}
ORDER = list(LAYERS)
LAYER_OF = {module: ORDER.index(layer) for layer, modules in LAYERS.items() for module in modules}
PACKAGE = Path(bhyt_theory.__file__).parent


def package_imports(path: Path) -> set[str]:
    """Sibling modules that ``path`` imports (``from .x import …`` or ``from bhyt_theory.x …``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("bhyt_theory."):
                found.add(node.module.split(".")[1])
    return found


def modules():
    return sorted(p for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def test_every_module_is_placed_in_a_layer():
    assert {p.stem for p in modules()} <= set(LAYER_OF), "add new modules to LAYERS"


def test_imports_point_only_downwards():
    upward = [
        f"{path.stem} ({ORDER[LAYER_OF[path.stem]]}) imports {name} ({ORDER[LAYER_OF[name]]})"
        for path in modules()
        for name in package_imports(path)
        if name in LAYER_OF and LAYER_OF[name] > LAYER_OF.get(path.stem, -1)
    ]
    assert not upward, upward
