"""Every figure of :mod:`simulations.plotting` is written, non-empty and deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from invariance_tradeoffs.simulations import plotting


def _tradeoff_rows():
    rows = []
    for model in ("linear", "mlp"):
        for eps in (0.0, 0.2, 0.4):
            rows.append({"family": "toy", "model": model, "norm": "linf", "eps": eps,
                         "correct": 1.0, "sensitivity_robust": 1.0 - eps,
                         "invariance_robust": 1.0 - eps / 2, "real_robust": 1.0 - eps,
                         "standard_robust": 1.0, "ceiling": 1.0 - eps, "good_radius": 0.2,
                         "method": "exact"})
    return rows


def _draw_all(out):
    files = []
    files += plotting.plot_good_radii(
        [{"family": f, "norm": n, "good_radius": 0.1 * i, "sampled_radius": 0.12 * i}
         for i, f in enumerate(("a", "b")) for n in ("l2", "linf")], out / "good_radii")
    files += plotting.plot_ceiling_curves(
        [{"family": "a", "norm": "l2", "eps": e, "exact": 1 - e, "mc": 1 - e,
          "mc_low": 0.9 - e, "mc_high": min(1.0, 1.1 - e)} for e in (0.0, 0.5)],
        out / "ceilings", curves={("a", "l2"): (np.linspace(0, 0.5, 5), np.linspace(1, .5, 5))})
    files += plotting.plot_tradeoff_curves(_tradeoff_rows(), out / "tradeoff")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    files += plotting.plot_overly_robust(
        X, (X[:, 0] > 0).astype(int), (np.array([1.0, 0.0]), 0.0),
        {0.0: (np.array([1.0, 1.0]), 0.0), 0.5: (np.array([0.0, 1.0]), 0.0),
         0.6: (np.zeros(2), 0.0)},
        (X[0], X[0] * [-1, 1]),
        [{"eps": e, "weight_oracle_feature": 1 - e, "weight_ignored_feature": e,
          "invariance_share": e, "good_radius": 0.2} for e in (0.0, 0.5)],
        out / "overly_robust", example_eps=0.5)
    files += plotting.plot_finite_domain(
        [{"domain": "d", "norm": "l0", "eps": e, "optimal_error": e / 4, "ceiling": 1 - e / 3}
         for e in (0, 1, 2)], out / "finite_domains")
    files += plotting.plot_image_grid(rng.random((3, 12)), rng.random((3, 12)),
                                      ["a", "b", "c"], (4, 3), out / "grid", title="t")
    files += plotting.plot_norm_alignment(
        [{"family": "a", "distance": d, "aligned": d == "l2", "covered": True,
          "nn_accuracy": 1.0 if d == "l2" else 0.8} for d in ("l1", "l2")], out / "alignment")
    return files


def test_every_figure_is_written_and_non_empty(tmp_path):
    files = _draw_all(tmp_path)
    assert len(files) == 14
    for f in files:
        assert f.exists() and f.stat().st_size > 1000
        assert f.suffix in (".png", ".pdf")
        if f.suffix == ".png":
            assert f.stat().st_size < 150_000


def test_figures_are_deterministic(tmp_path):
    a = plotting.plot_tradeoff_curves(_tradeoff_rows(), tmp_path / "a")
    b = plotting.plot_tradeoff_curves(_tradeoff_rows(), tmp_path / "b")
    for fa, fb in zip(a, b, strict=True):
        assert fa.read_bytes() == fb.read_bytes(), fa.name


def test_bad_tables_are_named(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        plotting.plot_tradeoff_curves([], tmp_path / "x")
    with pytest.raises(ValueError, match="lacks columns"):
        plotting.plot_good_radii([{"family": "a"}], tmp_path / "x")
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        plotting.plot_overly_robust(np.zeros((3, 3)), np.zeros(3), (np.ones(2), 0.0), {}, None,
                                    [{"eps": 0, "weight_oracle_feature": 0,
                                      "weight_ignored_feature": 0, "invariance_share": 0}],
                                    tmp_path / "x")
    with pytest.raises(ValueError, match="captions"):
        plotting.plot_image_grid(np.zeros((2, 4)), np.zeros((2, 4)), ["a"], (2, 2),
                                 tmp_path / "x")
