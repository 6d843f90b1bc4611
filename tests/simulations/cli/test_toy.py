"""``tradeoffs toy ...`` and the tidy tables it writes (CSV and JSON)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from invariance_tradeoffs.simulations.cli import main
from invariance_tradeoffs.simulations.experiments.toy.tables import (
    clean_value,
    read_table_json,
    write_table,
)


def test_good_norms_subcommand_writes_csv_and_json(tmp_path, capsys):
    assert main(["toy", "good-norms", "--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    for name in ("good_radii", "ceilings"):
        rows = read_table_json(tmp_path / f"{name}.json")
        with open(tmp_path / f"{name}.csv", newline="") as fh:
            csv_rows = list(csv.DictReader(fh))
        assert len(rows) == len(csv_rows) > 0
        assert list(csv_rows[0]) == list(rows[0])
    radii = read_table_json(tmp_path / "good_radii.json")
    assert {r["family"] for r in radii} >= {"overly-robust", "glyph-digits", "finite-domain"}
    assert "good-norms" in capsys.readouterr().out


def test_toy_help_and_bad_options(capsys):
    assert main(["toy"]) == 2  # a group without a subcommand prints its help
    assert "good-norms" in capsys.readouterr().out
    assert main(["toy", "tradeoff", "--quick", "--n-jobs", "0"]) == 2
    err = capsys.readouterr().err
    assert "--n-jobs" in err and "expected an integer" in err
    # the old spelling still works for one release, with a warning
    # (the command shows it as one line: tests/simulations/cli/test_warnings.py)
    with pytest.warns(FutureWarning, match="--small is deprecated; use --quick"):
        assert main(["toy", "tradeoff", "--small", "--n-jobs", "0"]) == 2


def test_write_table_round_trip(tmp_path):
    rows = [{"eps": np.float64(0.5), "n": np.int64(3), "ok": np.bool_(True), "r": np.inf,
             "missing": None, "name": "l2"}, {"eps": 1.0, "extra": "x"}]
    c, j = write_table(rows, tmp_path, "demo")
    back = read_table_json(j)
    assert back[0] == {"eps": 0.5, "n": 3, "ok": True, "r": float("inf"), "missing": None,
                       "name": "l2"}
    header = c.read_text().splitlines()[0].split(",")
    assert header == ["eps", "n", "ok", "r", "missing", "name", "extra"]
    assert json.loads(j.read_text())[0]["r"] == "inf"
    assert clean_value(float("nan")) is None


def test_write_table_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="name"):
        write_table([{"a": 1}], tmp_path, "../evil")
    with pytest.raises(TypeError, match="scalars"):
        write_table([{"a": [1, 2]}], tmp_path, "t")
    with pytest.raises(TypeError, match="mapping"):
        write_table([[1, 2]], tmp_path, "t")
    assert not (tmp_path / "t.csv").exists()


@pytest.mark.slow
def test_toy_all_small_writes_every_table_and_figure(tmp_path):
    from invariance_tradeoffs.simulations.experiments.toy.figures import FIGURES

    assert main(["toy", "all", "--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for name in manifest["tables"]:
        assert (tmp_path / name).stat().st_size > 0
    for stem in FIGURES:
        for ext in ("png", "pdf"):
            assert (tmp_path / f"{stem}.{ext}").stat().st_size > 0
