"""The command shows a warning as one line, ``tradeoffs: warning: ...``, with no source
location (pytest records warnings, so this runs the command in a child process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_a_warning_is_one_line():
    res = subprocess.run([sys.executable, "-m", "invariance_tradeoffs.simulations", "toy",
                          "tradeoff", "--small", "--n-jobs", "0"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = res.stderr.splitlines()
    assert res.returncode == 2, res.stderr
    assert lines[0] == "tradeoffs: warning: --small is deprecated; use --quick"
    assert len(lines) == 2 and lines[1].startswith("tradeoffs: error: argument --n-jobs")
