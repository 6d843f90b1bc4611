"""Each toy experiment on a small configuration: the table's shape and the property it shows."""

from __future__ import annotations

import numpy as np
import pytest

from invariance_tradeoffs.simulations.experiments.toy.experiments import (
    ToyConfig,
    TradeoffSpec,
    alignment,
    glyph_attacks,
    good_norms,
    linear_oracle,
    overly_robust,
    tradeoff,
)
from invariance_tradeoffs.theory.toys import get_family

SMALL = ToyConfig.small()


def _rows(result, table):
    rows = result.tables[table]
    assert rows, f"{table} is empty"
    return rows


def test_good_norms_exact_next_to_sampled():
    res = good_norms(["overly-robust", "spheres", "finite-domain"], SMALL)
    radii = _rows(res, "good_radii")
    assert {(r["family"], r["norm"]) for r in radii} == {
        (f, n) for f in ("overly-robust", "spheres", "finite-domain")
        for n in ("l0", "l1", "l2", "linf")}
    for r in radii:
        assert r["good_radius_kind"] == "exact"
        assert r["good_radius"] == get_family(r["family"]).good_radius(r["norm"]).value
        # the sample minimum is an upper bound on the essential infimum (up to rounding)
        assert r["sampled_radius"] >= r["good_radius"] - 1e-12
    ceil = _rows(res, "ceilings")
    exact_rows = [r for r in ceil if r["exact"] is not None]
    assert exact_rows and all(r["mc_low"] <= r["mc"] <= r["mc_high"] for r in ceil)
    # 95% intervals: nearly all cover the exact value
    assert np.mean([r["exact_in_ci"] for r in exact_rows]) >= 0.9
    # spheres only has an exact l2 ceiling
    assert all(r["exact"] is None for r in ceil if r["family"] == "spheres" and r["norm"] != "l2")


def test_good_norms_is_deterministic():
    a = good_norms(["overly-robust"], SMALL).tables
    b = good_norms(["overly-robust"], SMALL).tables
    assert a == b


def test_alignment_table_and_theorem():
    res = alignment(["overly-robust", "linear-gaussian"], SMALL)
    rows = _rows(res, "alignment")
    by = {(r["family"], r["distance"]): r for r in rows}
    assert len(by) == len(rows) == 2 * 8
    # the theorem's direction holds on every row
    assert all(r["theorem_holds"] for r in rows)
    # overly-robust: good radius 0.2 > covering radius of a dense sample -> perfect 1-NN
    r = by["overly-robust", "l2"]
    assert r["aligned"] and r["nn_accuracy"] == 1.0 and r["good_radius"] == 0.2
    # linear-gaussian: good radius 0, so no lp norm is aligned
    assert not any(by["linear-gaussian", n]["aligned"] for n in ("l1", "l2", "linf"))
    # d_f of the oracle is aligned (its margin is at least lam) and f is perfect
    for fam in ("overly-robust", "linear-gaussian"):
        r = by[fam, "d_f[l2, oracle]"]
        assert r["aligned"] and r["f_perfect"] and r["nn_accuracy"] == 1.0
        assert r["df_aligned_iff_f_perfect"]
    # aligned rows always have a perfect 1-NN rule
    assert all(r["nn_perfect"] for r in rows if r["aligned"])


@pytest.fixture(scope="module")
def overly_robust_curve():
    spec = TradeoffSpec("overly-robust", "linear", "linf", 0.6)
    return _rows(tradeoff([spec], SMALL), "tradeoff")


def test_tradeoff_invariance_errors_appear_past_the_good_radius(overly_robust_curve):
    rows = overly_robust_curve
    a = rows[0]["good_radius"]
    assert a == 0.2
    assert len(rows) == SMALL.n_eps
    below = [r for r in rows if r["eps"] < a]
    above = [r for r in rows if r["eps"] > a]
    assert below and above
    for r in below:
        assert r["invariance_robust"] == r["correct"]
    for r in above:
        assert r["invariance_robust"] < r["correct"]
    # the robust-trained classifier stays lp-robust and accurate: it pays with invariance
    assert all(r["standard_robust"] == 1.0 and r["correct"] == 1.0 for r in rows)
    for r in rows:
        assert r["method"].startswith("exact")
        assert r["robust_and_real"] <= r["ceiling"] + 0.1  # sample share vs exact ceiling


def test_tradeoff_mlp_by_attack():
    spec = TradeoffSpec("overly-robust", "mlp", "l2", 0.6)
    rows = _rows(tradeoff([spec], ToyConfig.small(n_eps=3)), "tradeoff")
    assert [r["eps"] for r in rows] == [0.0, 0.3, 0.6]
    assert all(r["method"].startswith("attack") for r in rows)
    assert rows[0]["invariance_robust"] == rows[0]["correct"]
    assert rows[-1]["invariance_robust"] < rows[-1]["correct"]


def test_linear_oracle_adapter():
    assert linear_oracle(get_family("spheres")) is None
    for name in ("overly-robust", "linear-gaussian", "tsipras"):
        u, c = linear_oracle(get_family(name))
        assert u.ndim == 1 and np.isfinite(c)
    with pytest.raises(ValueError, match="no linear oracle"):
        tradeoff([TradeoffSpec("spheres", "linear", "l2", 1.0)], ToyConfig.small(n_eps=2))


def test_overly_robust_weight_moves_and_finite_domains_exact():
    res = overly_robust(SMALL, finite_domains=[(
        "binary 3x3, orientation", {"height": 3, "width": 3, "rule": "orientation"},
        (0, 1, 2, 3))])
    w = _rows(res, "overly_robust")
    eps = [r["eps"] for r in w]
    assert eps == sorted(eps)
    ignored = [r["weight_ignored_feature"] for r in w]
    assert ignored[-1] > ignored[0] and ignored[-1] > 0.99
    for r in w:
        if r["eps"] < r["good_radius"]:
            assert r["n_with_invariance"] == 0
    assert w[-1]["n_with_invariance"] > 0
    fd = _rows(res, "finite_domains")
    assert [r["eps"] for r in fd] == [0.0, 1.0, 2.0, 3.0]
    assert all(r["optimal_error_kind"] == "exact" and r["bounded_by_ceiling"] for r in fd)
    assert fd[0]["optimal_error"] < 1e-12 and fd[0]["ceiling"] == 1.0
    # invariance examples of the robust-optimal classifier only past the good radius
    assert all(r["invariance_share"] == 0 for r in fd if r["eps"] < r["good_radius"])
    ex = res.figure_data["example"]
    assert ex is not None and np.sign(ex[0][0]) != np.sign(ex[1][0])


def test_glyph_attacks_table():
    res = glyph_attacks(SMALL, linf_radii=(0.1, 0.5), l0_budgets=(1, 24), grid_eps=0.5)
    rows = _rows(res, "glyph_attacks")
    assert len(rows) == 2 * 2 * 2  # norms x radii x models
    for r in rows:
        assert r["below_margin"] == 0
        for key in ("oracle_changed", "model_kept", "invariance"):
            assert r[f"{key}_kind"] == "estimate" and r[f"{key}_low"] <= r[key] <= r[f"{key}_high"]
        assert r["invariance"] <= min(r["oracle_changed"], r["model_kept"]) + 1e-12
    small = [r for r in rows if r["norm"] == "linf" and r["radius"] == 0.1]
    assert all(r["oracle_changed"] == 0.0 for r in small)  # 0.1 < good radius 0.15
    big = [r for r in rows if r["norm"] == "linf" and r["radius"] == 0.5]
    assert all(r["oracle_changed"] > 0.5 for r in big)
    fd = res.figure_data
    assert fd["sources"].shape == fd["examples"].shape and len(fd["captions"]) <= 12
    sm = _rows(res, "glyph_smallest")
    assert len(sm) == 4
    for r in sm:
        if r["found"] > 0:  # no invariance example below the exact margin
            assert r["min_ratio_to_margin"] >= 1.0 - 1e-9
