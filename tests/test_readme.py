"""The README's Python snippet runs as written (on the data of ../shared/data)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_python_snippet_runs(mnist_dir, published_dir, monkeypatch, capsys):
    pytest.importorskip("torch")
    monkeypatch.setenv("INVARIANCE_TRADEOFFS_DATA", str(mnist_dir.parent))
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has a Python snippet"
    scope: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), scope)
    table = capsys.readouterr().out
    assert "| linf/automated_eps03 | 100 | 21 |" in table
    report = scope["report"]
    q = report.agreement("linf/automated_eps04", changed=True)
    assert q.kind == "estimate" and 0 <= q.low <= q.value <= q.high <= 1
    examples, success = scope["examples"], scope["success"]
    assert examples.shape == (2, 5, 28, 28) and success.shape == (2, 5)
    # within each radius
    x = scope["test"].images[:5].astype(float) / 255
    assert np.all(np.abs(examples[0] - x).max(axis=(1, 2)) <= 0.3 + 1e-9)
    assert np.all(np.abs(examples[1] - x).max(axis=(1, 2)) <= 0.4 + 1e-9)
