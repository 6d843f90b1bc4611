"""Every docstring example of the installed package runs and prints what it says.

The examples are collected from the modules of ``invariance_tradeoffs`` as installed (not
from the source folders, which pytest would import a second time under other names).
Examples that need data or minutes are marked ``# doctest: +SKIP`` in the source.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import invariance_tradeoffs


def _modules() -> list[str]:
    names = [invariance_tradeoffs.__name__]
    for info in pkgutil.walk_packages(invariance_tradeoffs.__path__, "invariance_tradeoffs."):
        names.append(info.name)
    for sub in ("theory", "simulations"):
        pkg = importlib.import_module(f"invariance_tradeoffs.{sub}")
        names.append(pkg.__name__)
        names += [i.name for i in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
    # __main__ modules run the CLI when imported
    return sorted({n for n in names if not n.endswith("__main__")})


MODULES = _modules()


def test_every_package_module_is_found():
    assert "invariance_tradeoffs.theory.distances" in MODULES
    assert "invariance_tradeoffs.simulations.attacks.pgd" in MODULES
    assert len(MODULES) > 50


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # examples that write files write here
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(module, name)  # globals: a copy of the module's
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
