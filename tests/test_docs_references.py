"""The documentation names real code: every import in a docs code block resolves, and every
module path it cites exists.

Docs drift when code moves; these checks fail on the first stale reference instead of a
reader finding it. (Running every snippet would train models; importing what they import
is the part that goes stale.)
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "proofs").glob("*.md")])
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
# A cited source file: `theory/x.py`, `simulations/a/b.py`, `benchmarks/x.py`, ...
PATH = re.compile(r"`((?:theory|simulations|benchmarks|proofs|tests|invariance_tradeoffs)"
                  r"/[\w/]+\.py)`")
# A dotted module name in backticks, e.g. `simulations.models.zoo` or
# `invariance_tradeoffs.theory.margins` (an attribute after the module is allowed).
DOTTED = re.compile(r"`((?:invariance_tradeoffs\.)?(?:theory|simulations)(?:\.\w+)+)")


def _imports(code: str) -> list[tuple[str, list[str]]]:
    out = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
    return out


def _code_imports() -> list[tuple[str, str, list[str]]]:
    found = []
    for doc in DOCS:
        for block in BLOCK.findall(doc.read_text()):
            lines = [ln for ln in block.splitlines() if not ln.startswith((">>>", "..."))]
            try:
                found += [(doc.name, m, n) for m, n in _imports("\n".join(lines))]
            except SyntaxError:  # a transcript, not code
                continue
    return found


def _resolve(dotted: str) -> object:
    """Import the longest importable prefix of ``dotted`` and get the rest as attributes."""
    if not dotted.startswith("invariance_tradeoffs"):
        dotted = "invariance_tradeoffs." + dotted
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


@pytest.mark.parametrize("doc,module,names", _code_imports(),
                         ids=lambda v: v if isinstance(v, str) else None)
def test_docs_code_imports_resolve(doc, module, names):
    pytest.importorskip("torch")  # several snippets import the torch-backed modules
    if module.split(".")[0] in {"numpy", "torch", "hypothesis", "matplotlib", "scipy",
                                "sympy", "sklearn", "pathlib", "json"}:
        return
    mod = importlib.import_module(module)
    missing = [n for n in names if n != "*" and not hasattr(mod, n)]
    assert not missing, f"{doc}: `from {module} import` names missing: {missing}"


def test_docs_cited_paths_exist():
    stale = []
    for doc in DOCS:
        text = doc.read_text()
        stale += [f"{doc.name}: {p}" for p in PATH.findall(text) if not (ROOT / p).exists()]
    assert not stale, "docs cite files that do not exist:\n" + "\n".join(stale)


def test_docs_cited_modules_exist():
    pytest.importorskip("torch")
    stale = []
    for doc in DOCS:
        for dotted in set(DOTTED.findall(doc.read_text())):
            try:
                _resolve(dotted)
            except (ModuleNotFoundError, AttributeError):
                stale.append(f"{doc.name}: {dotted}")
    assert not stale, "docs name modules or attributes that do not exist:\n" + "\n".join(
        sorted(stale))
