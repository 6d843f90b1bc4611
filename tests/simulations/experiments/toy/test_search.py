"""Attack-based example search and the glyph invariance attacks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invariance_tradeoffs.simulations.attacks.glyph import (
    l0_invariance_attack,
    linf_invariance_attack,
    other_class_neighbours,
    score_attack,
)
from invariance_tradeoffs.simulations.experiments.toy.exact_linear import (
    linear_example_distances,
    linear_robust_accuracies,
)
from invariance_tradeoffs.simulations.experiments.toy.search import (
    ball_probes,
    invariance_candidates,
)
from invariance_tradeoffs.simulations.experiments.toy.training import LinearClassifier
from invariance_tradeoffs.theory.distances import LpDistance
from invariance_tradeoffs.theory.robust_accuracy import robustness_report
from invariance_tradeoffs.theory.toys import get_family


def _search_vs_exact(seed: int, eps: float, norm: str):
    fam = get_family("overly-robust")
    rng = np.random.default_rng(seed)
    w = rng.normal(size=2)
    clf = LinearClassifier(w, 0.0)
    X, _ = fam.sample(80, seed=seed)
    pool, pool_y = fam.sample(300, seed=seed + 1)
    cand = np.vstack([X, invariance_candidates(X, fam.oracle(X), pool, pool_y, norm=norm,
                                               eps=eps),
                      ball_probes(X, norm=norm, eps=eps, seed=seed)])
    rep = robustness_report(X, fam, clf, LpDistance(norm), eps, cand, exhaustive=False)
    exact = linear_robust_accuracies(linear_example_distances(X, w, 0.0, np.array([1.0, 0.0]),
                                                              0.0, norm), eps)
    return rep, exact


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000), eps=st.floats(0.05, 0.6),
       norm=st.sampled_from(["l1", "l2", "linf"]))
def test_model_free_search_is_sound(seed, eps, norm):
    """Candidates from neighbour moves and ball probes, checked by the oracle, can only
    miss examples: their robust shares are upper bounds on the exact ones."""
    rep, exact = _search_vs_exact(seed, eps, norm)
    for mask in ("invariance_robust", "sensitivity_robust", "standard_robust", "real_robust"):
        assert getattr(rep, mask).mean() >= exact[mask] - 1e-12


@pytest.mark.parametrize("norm", ["l1", "l2", "linf"])
def test_model_free_search_is_nearly_tight_in_2d(norm):
    # Random linear classifiers at 12 fixed seeds: the search misses few inputs.
    gaps = []
    for seed in range(12):
        rep, exact = _search_vs_exact(seed, 0.4, norm)
        gaps.append(rep.invariance_robust.mean() - exact["invariance_robust"])
    assert max(gaps) <= 0.1, gaps


def test_neighbours_are_of_another_class_and_nearest():
    rng = np.random.default_rng(0)
    pool = rng.random((40, 6))
    pool_y = rng.integers(0, 3, 40)
    pool_y[:2] = -1  # rejected pool images are never targets
    src = rng.random((10, 6))
    src_y = rng.integers(0, 3, 10)
    nb = other_class_neighbours(src, src_y, pool, pool_y)
    assert np.all(pool_y[nb] != src_y) and np.all(pool_y[nb] >= 0)
    for i in range(10):
        ok = (pool_y != src_y[i]) & (pool_y >= 0)
        d = np.linalg.norm(pool[ok] - src[i], axis=1)
        assert np.isclose(np.linalg.norm(pool[nb[i]] - src[i]), d.min())
    with pytest.raises(ValueError, match="no image of a class other than"):
        other_class_neighbours(src, np.zeros(10, int), pool, np.zeros(40, int))


def attack_respects_margins(result: dict, oracle, margins: np.ndarray, budget: float) -> bool:
    """Any attack: distortion within budget, and wherever the true class changed the
    distortion is at least the exact oracle margin (nothing nearer changes the class)."""
    changed = (oracle(result["examples"]) != oracle(result["sources"])) & (
        oracle(result["examples"]) >= 0)
    within = np.all(result["distortion"] <= budget + 1e-12)
    return bool(within and np.all(result["distortion"][changed] >= margins[changed] - 1e-9))


@pytest.fixture(scope="module")
def glyphs():
    fam = get_family("glyph-digits")
    src, src_y = fam.sample(60, seed=1)
    pool, pool_y = fam.sample(300, seed=2)
    return fam, src, src_y, pool, pool_y


@settings(max_examples=8, deadline=None)
@given(eps=st.floats(0.05, 0.6))
def test_linf_glyph_attack_respects_the_exact_margin(glyphs, eps):
    fam, src, src_y, pool, pool_y = glyphs
    res = linf_invariance_attack(src, src_y, pool, pool_y, eps)
    assert set(res) >= {"sources", "source_labels", "examples", "targets", "distortion",
                        "neighbours"}
    assert res["examples"].min() >= 0 and res["examples"].max() <= 1
    assert attack_respects_margins(res, fam, fam.margin(src, "linf"), eps)


@settings(max_examples=8, deadline=None)
@given(k=st.integers(0, 40))
def test_l0_glyph_attack_respects_the_exact_margin(glyphs, k):
    fam, src, src_y, pool, pool_y = glyphs
    res = l0_invariance_attack(src, src_y, pool, pool_y, k)
    assert attack_respects_margins(res, fam, fam.margin(src, "l0"), k)


def test_margin_check_catches_an_inflated_margin(glyphs):
    fam, src, src_y, pool, pool_y = glyphs
    res = linf_invariance_attack(src, src_y, pool, pool_y, 0.5)
    m = fam.margin(src, "linf")
    assert attack_respects_margins(res, fam, m, 0.5)
    assert not attack_respects_margins(res, fam, 3 * m, 0.5)


def test_attacks_change_the_oracle_only_beyond_the_good_radius(glyphs):
    fam, src, src_y, pool, pool_y = glyphs
    r = fam.good_radius("linf").value
    below = score_attack(linf_invariance_attack(src, src_y, pool, pool_y, 0.9 * r), fam, fam)
    above = score_attack(linf_invariance_attack(src, src_y, pool, pool_y, 0.5), fam, fam)
    assert below["oracle_changed"].value == 0.0
    assert above["oracle_changed"].value > 0.5
    # the oracle as the model never keeps its label where its label changed
    assert above["invariance"].value == 0.0
    assert above["oracle_changed"].kind == "estimate" and above["oracle_changed"].low <= 1


def test_attack_inputs_are_checked(glyphs):
    _, src, src_y, pool, pool_y = glyphs
    with pytest.raises(ValueError, match="eps"):
        linf_invariance_attack(src, src_y, pool, pool_y, 0.0)
    with pytest.raises(ValueError, match="k must be"):
        l0_invariance_attack(src, src_y, pool, pool_y, -1)
    with pytest.raises(ValueError, match="pool"):
        linf_invariance_attack(src, src_y, pool[:, :5], pool_y, 0.3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        linf_invariance_attack(src * 3, src_y, pool, pool_y, 0.3)
