"""The package's shape (docs/architecture.md): imports point one way between layers, no
module imports another's private names, top-level imports have no cycle, modules stay
small, and every package folder is installed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"theory": "invariance_tradeoffs.theory",
         "simulations": "invariance_tradeoffs.simulations",
         "invariance_tradeoffs": "invariance_tradeoffs"}

#: (module prefix, layer): a module may import only from its own layer or lower ones.
LAYERS = [
    ("invariance_tradeoffs.theory", 0),
    ("invariance_tradeoffs.simulations.io", 1),
    ("invariance_tradeoffs.simulations.images", 1),
    ("invariance_tradeoffs.simulations.optional", 1),
    ("invariance_tradeoffs.simulations.engine", 1),
    ("invariance_tradeoffs.simulations.plotting", 1),
    ("invariance_tradeoffs.simulations.data", 2),
    ("invariance_tradeoffs.simulations.models", 3),
    ("invariance_tradeoffs.simulations.certification", 3),
    ("invariance_tradeoffs.simulations.attacks", 3),
    ("invariance_tradeoffs.simulations.evaluation", 4),
    ("invariance_tradeoffs.simulations.margins", 4),
    ("invariance_tradeoffs.simulations.experiments", 5),
    ("invariance_tradeoffs.simulations.study.__main__", 6),  # an entry point, as the CLI
    ("invariance_tradeoffs.simulations.study", 5),
    ("invariance_tradeoffs.simulations.cli", 6),
    ("invariance_tradeoffs.simulations", 6),  # the package itself and __main__
    ("invariance_tradeoffs", 7),  # the public facade
]


def _modules() -> dict[str, Path]:
    out = {}
    for folder, pkg in ROOTS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([pkg, *parts])] = path
    return out


MODULES = _modules()


def _layer(module: str) -> int:
    for prefix, layer in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    raise AssertionError(f"{module} belongs to no layer")


def _imports(module: str, path: Path, *, top_level_only: bool = False
             ) -> list[tuple[str, list[str], int]]:
    """(imported module, names, line) of every package import in ``path``."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module:
            mod = node.module
            if node.level:  # relative import
                base = module.split(".")[: -node.level]
                mod = ".".join(base + [node.module])
            if mod.startswith("invariance_tradeoffs"):
                names = [a.name for a in node.names]
                subs = [f"{mod}.{n}" for n in names if f"{mod}.{n}" in MODULES]
                if subs:  # "from package import module": the module is the target
                    found += [(sub, [], node.lineno) for sub in subs]
                    names = [n for n in names if f"{mod}.{n}" not in MODULES]
                    if not names:
                        continue
                found.append((mod, names, node.lineno))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("invariance_tradeoffs"):
                    found.append((a.name, [], node.lineno))
    return found


def test_every_module_is_in_a_layer():
    for module in MODULES:
        _layer(module)


def test_imports_point_down_the_layers():
    bad = []
    for module, path in MODULES.items():
        for target, _names, line in _imports(module, path):
            if _layer(target) > _layer(module):
                bad.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not bad, "\n".join(bad)


def test_no_private_names_cross_modules():
    bad = []
    for module, path in MODULES.items():
        for target, names, line in _imports(module, path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and target != module:
                bad.append(f"{path.relative_to(REPO)}:{line} imports {private} from {target}")
    assert not bad, "\n".join(bad)


def test_top_level_imports_have_no_cycle():
    graph = {m: {t for t, _, _ in _imports(m, p, top_level_only=True) if t in MODULES}
             for m, p in MODULES.items()}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_modules_stay_small():
    big = {str(p.relative_to(REPO)): n for p in MODULES.values()
           if (n := len(p.read_text().splitlines())) > 650}
    assert not big, f"modules over 650 lines: {big}"


def test_every_package_folder_is_installed():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    folders = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    assert folders == listed
