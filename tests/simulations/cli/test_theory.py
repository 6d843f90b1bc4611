"""``tradeoffs theory families | good-radius | ceiling``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from invariance_tradeoffs.simulations.cli import main
from invariance_tradeoffs.simulations.cli.theory import parse_params
from invariance_tradeoffs.theory.toys import FAMILIES, get_family


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_good_radius_json_keys_and_value(capsys):
    code, out, _ = run(capsys, "theory", "good-radius", "--family", "spheres", "--norm", "linf",
                       "--param", "d=4", "radii=1,2,3", "--json")
    assert code == 0
    rep = json.loads(out)
    assert {"family", "norm", "params", "value", "kind", "method"} <= set(rep)
    assert rep["family"] == "spheres" and rep["norm"] == "linf" and rep["kind"] == "exact"
    assert rep["params"]["radii"] == [1.0, 2.0, 3.0] and rep["params"]["d"] == 4
    assert rep["value"] == pytest.approx(0.25)
    assert rep["value"] == get_family("spheres", d=4, radii=[1, 2, 3]).good_radius("linf").value


@pytest.mark.parametrize("family", list(FAMILIES))
def test_good_radius_every_family_and_norm(capsys, family):
    for norm in get_family(family).norms:
        code, out, _ = run(capsys, "theory", "good-radius", "--family", family, "--norm", norm,
                           "--json")
        assert code == 0 and json.loads(out)["value"] == get_family(family).good_radius(norm).value


def test_ceiling_exact_and_estimate(capsys):
    code, out, _ = run(capsys, "theory", "ceiling", "--family", "overly-robust", "--norm", "l2",
                       "--eps", "0.1", "0.4", "--json")
    rows = json.loads(out)["ceiling"]
    assert code == 0 and [r["eps"] for r in rows] == [0.1, 0.4]
    assert rows[0]["value"] == 1.0 and rows[1]["value"] == pytest.approx(0.5)
    assert all(r["kind"] == "exact" for r in rows)
    code, out, _ = run(capsys, "theory", "ceiling", "--family", "glyph-digits", "--norm", "linf",
                       "--eps", "0.2", "--estimate", "300", "--seed", "1", "--json")
    row = json.loads(out)["ceiling"][0]
    assert code == 0 and row["kind"] == "estimate" and row["n"] == 300
    assert row["low"] <= row["value"] <= row["high"]


def test_text_output(capsys):
    code, out, _ = run(capsys, "theory", "good-radius", "--family", "overly-robust",
                       "--norm", "linf")
    assert code == 0 and out.startswith("good radius of overly-robust under linf: 0.2 (exact")
    code, out, _ = run(capsys, "theory", "families")
    assert code == 0 and all(name in out for name in FAMILIES)


def test_families_json(capsys):
    code, out, _ = run(capsys, "theory", "families", "--json")
    rep = json.loads(out)
    assert code == 0 and [r["family"] for r in rep] == list(FAMILIES)
    spheres = next(r for r in rep if r["family"] == "spheres")
    assert spheres["exact_ceiling_norms"] == ["l2"] and spheres["defaults"]["radii"] == [1.0, 2.0]


@pytest.mark.parametrize("argv, needle", [
    (["--family", "nope", "--norm", "l2"], "unknown family 'nope'"),
    (["--family", "spheres", "--norm", "l7"], "norm 'l7'"),
    (["--family", "spheres", "--norm", "l2", "--param", "foo=1"], "unknown parameter(s) foo"),
    (["--family", "spheres", "--norm", "l2", "--param", "radii"], "--param expects KEY=VALUE"),
    (["--family", "spheres", "--norm", "l2", "--param", "d=2.5"], "d must be an integer"),
])
def test_errors_are_one_line_with_exit_code_2(capsys, argv, needle):
    code, out, err = run(capsys, "theory", "good-radius", *argv)
    assert code == 2 and out == ""
    assert needle in err and err.count("\n") == 1 and err.startswith("tradeoffs: error:")


def test_ceiling_without_closed_form_suggests_estimate(capsys):
    code, _, err = run(capsys, "theory", "ceiling", "--family", "glyph-digits", "--norm",
                       "linf", "--eps", "0.1")
    assert code == 2 and "--estimate N" in err


def test_parse_params():
    assert parse_params(["a=0.1", "radii=1,2", "w=[1, -2]", "rule=majority", "x=true"]) == {
        "a": 0.1, "radii": [1, 2], "w": [1, -2], "rule": "majority", "x": True}
    assert parse_params(None) == {}


def test_console_entry_point():
    out = subprocess.run([sys.executable, "-m", "simulations", "theory", "good-radius",
                          "--family", "tsipras", "--norm", "l0", "--json"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["value"] == 1.0
