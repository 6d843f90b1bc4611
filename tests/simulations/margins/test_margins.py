"""Margin bounds from real MNIST subsets: arrays, resume, TI l2, summaries, figure (issue 14)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from invariance_tradeoffs.simulations.attacks.alignment import NeighbourIndex, transform_grid
from invariance_tradeoffs.simulations.margins.margins import (
    crossing_table,
    load_arrays,
    margin_summary,
    nearest_arrays,
    nearest_other,
    one_nn,
    separation_arrays,
    share_above,
    ti_arrays,
)
from invariance_tradeoffs.simulations.margins.report import (
    glyph_radii,
    human_ceilings,
    margins_figure,
    margins_table,
)
from invariance_tradeoffs.simulations.margins.search import ExactSearch, brute_force_nearest


@pytest.fixture(scope="module")
def small(mnist_dir):
    """2000 training images (seeded) and the first 40 test images."""
    from invariance_tradeoffs.simulations.data.mnist import load_mnist

    train, test = load_mnist("train", mnist_dir), load_mnist("test", mnist_dir)
    pick = np.sort(np.random.default_rng(14).choice(60000, 2000, replace=False))
    return (train.images[pick], train.labels[pick], test.images[:40], test.labels[:40],
            ExactSearch(train.images[pick], train.labels[pick], batch=16))


def test_arrays_hold_the_exact_nearest_images(small, tmp_path):
    x, y, q, yq, search = small
    arrays, path = nearest_arrays(q, yq, search, tmp_path, "near", part_size=16,
                                  progress=False)
    assert path.is_file() and not (tmp_path / "near.parts").exists()
    again = load_arrays(path, ["linf_distances"])
    for m in ("l0", "l1", "l2", "linf"):
        ref = brute_force_nearest(q, x, y, m)
        assert np.array_equal(again[f"{m}_distances"], ref.distances), m
    # the bound: nearest other-class distance, in [0, 1] units
    own = arrays["classes"][None] == yq[:, None]
    ref = brute_force_nearest(q, x, y, "linf").distances
    assert np.allclose(nearest_other(arrays, "linf"), np.where(own, 10**9, ref).min(1) / 255)


def test_an_interrupted_run_resumes_where_it_stopped(small, tmp_path, monkeypatch):
    x, y, q, yq, search = small
    calls = []
    real = search.nearest

    def flaky(queries, metrics, **kw):
        calls.append(len(queries))
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if stopped during the second part
        return real(queries, metrics, **kw)

    monkeypatch.setattr(search, "nearest", flaky)
    with pytest.raises(KeyboardInterrupt):
        nearest_arrays(q, yq, search, tmp_path, "near", part_size=16, progress=False)
    assert len(list((tmp_path / "near.parts").glob("part-*.npz"))) == 1
    arrays, _ = nearest_arrays(q, yq, search, tmp_path, "near", part_size=16, progress=False)
    assert calls == [16, 16, 16, 8]  # the first part was not recomputed
    monkeypatch.setattr(search, "nearest", real)
    fresh, _ = nearest_arrays(q, yq, search, tmp_path / "fresh", "near", progress=False)
    for k in fresh:
        assert np.array_equal(arrays[k], fresh[k]), k
    # a finished file is read back, not recomputed; one of other images is refused
    monkeypatch.setattr(search, "nearest", None)
    nearest_arrays(q, yq, search, tmp_path, "near", progress=False)
    with pytest.raises(ValueError, match="holds other images"):
        nearest_arrays(q[:5], yq[:5], search, tmp_path, "near", progress=False)


def test_separation_equals_the_brute_force_minimum(small, tmp_path):
    x, y, q, yq, search = small
    arrays, _ = separation_arrays(x[:60], y[:60], search, tmp_path, "sep", part_size=20,
                                  progress=False)
    for m in ("l0", "l1", "l2", "linf"):
        ref = brute_force_nearest(x[:60], x, y, m)
        own = ref.classes[None] == y[:60, None]
        want = np.where(own, np.iinfo(np.int64).max, ref.distances).min()
        got = np.where(own, np.iinfo(np.int64).max, arrays[f"{m}_distances"]).min()
        assert got == want, m


def test_ti_l2_is_the_minimum_over_transforms(small, tmp_path):
    x, y, q, yq, _ = small
    grid = transform_grid(shifts=[-1.0, 0.0, 1.0], angles=[-10.0, 0.0])
    index = NeighbourIndex(x[:500], y[:500], n_components=16)
    arrays, _ = ti_arrays(q[:3], yq[:3], index, tmp_path, "ti", grid=grid, progress=False)
    from invariance_tradeoffs.simulations.attacks.alignment import transformed_copies

    for i in range(3):
        copies = transformed_copies(q[i], grid).reshape(len(grid), -1)
        ref = np.stack([brute_force_nearest(copies, x[:500], y[:500], "l2").distances[g]
                        for g in range(len(grid))]).min(axis=0)
        assert np.array_equal(arrays["ti_l2_distances"][i], ref)
    summary = margin_summary(arrays, "ti_l2", (2.0,))
    assert summary["n"] == 3 and summary["one_nn"].kind == "estimate"


def test_summaries_by_hand():
    # two images of class 0 and 1; distances to classes (0, 1) in l-inf grey levels
    arrays = {"source_indices": np.arange(3), "labels": np.array([0, 1, 1]),
              "classes": np.array([0, 1]),
              "linf_distances": np.array([[10, 51], [102, 102], [0, 255]])}
    assert np.allclose(nearest_other(arrays, "linf"), [0.2, 0.4, 0.0])
    acc = one_nn(arrays, "linf")  # image 1 ties (an error), image 2 is nearer class 0
    assert acc.value == pytest.approx(1 / 3) and acc.extra["ties"] == 1
    assert acc.extra["if_ties_won"] == pytest.approx(2 / 3)
    share = share_above(nearest_other(arrays, "linf"), 0.3, "linf")
    assert share.value == pytest.approx(1 / 3) and share.low < share.value < share.high
    summary = margin_summary(arrays, "linf", (0.1,))
    assert summary["separation"].value == 0.0 and summary["separation"].extra["image"] == 2
    with pytest.raises(ValueError, match="distance must be one of"):
        nearest_other(arrays, "l3")
    with pytest.raises(ValueError, match="hold no 'l1_distances'"):
        nearest_other(arrays, "l1")


def test_published_crossing_and_ceilings(mnist_dir, published_dir):
    from invariance_tradeoffs.simulations.data.mnist import load_mnist
    from invariance_tradeoffs.simulations.data.published import load_published_examples

    sets = load_published_examples(published_dir, data_dir=mnist_dir)
    ceilings = human_ceilings(sets)
    assert ceilings["linf/automated_eps03"]["ceiling"].value == pytest.approx(0.79)
    pset = sets["linf/automated_eps04"]
    train, test = load_mnist("train", mnist_dir), load_mnist("test", mnist_dir)
    search = ExactSearch(train.images[:3000], train.labels[:3000])
    idx = pset.source_indices[:10]
    found = search.nearest(test.images[idx], ["linf", "l2"])
    arrays = {"source_indices": idx, "labels": test.labels[idx].astype(np.int64),
              "classes": found["l2"].classes,
              **{f"{m}_distances": r.distances for m, r in found.items()}}
    with pytest.raises(ValueError, match="lack test images"):
        crossing_table(pset, arrays, "linf")
    sub = type(pset)(**{**pset.__dict__, **{k: getattr(pset, k)[:10] for k in (
        "source_indices", "sources", "examples", "original_labels", "human_labels",
        "distortion")}})
    table = crossing_table(sub, arrays, "linf")
    assert table["n"] == 10 and table["beyond"] == 0  # 0.4 is below every l-inf bound
    assert table["within_changed"] + table["within_unchanged"] == 10


def test_bad_input_names_the_argument(small, tmp_path):
    x, y, q, yq, search = small
    with pytest.raises(ValueError, match="query_labels"):
        nearest_arrays(q, yq[:3], search, tmp_path, "a")
    with pytest.raises(ValueError, match="part_size"):
        nearest_arrays(q, yq, search, tmp_path, "a", part_size=0)
    with pytest.raises(ValueError, match="metrics"):
        nearest_arrays(q, yq, search, tmp_path, "a", metrics=["l5"])
    with pytest.raises(ValueError, match="name"):
        nearest_arrays(q, yq, search, tmp_path, "../a")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="out_dir"):
        nearest_arrays(q, yq, search, tmp_path / "file", "a")
    with pytest.raises(FileNotFoundError, match="margins file"):
        load_arrays(tmp_path / "none.npz")


def test_figure_and_table(tmp_path):
    rng = np.random.default_rng(0)
    radii = glyph_radii()
    assert radii["linf"] == pytest.approx(0.15)
    arrays = {"source_indices": np.arange(50), "labels": rng.integers(0, 3, 50),
              "classes": np.arange(3),
              "linf_distances": rng.integers(100, 256, (50, 3)),
              "l2_distances": rng.integers(10**5, 10**7, (50, 3))}
    results = {"glyph_radii": radii,
               "distances": {m: margin_summary(arrays, m, (0.3,)) for m in ("l2", "linf")},
               "yang_separation": {"train-train": 0.737}}
    bounds = {m: nearest_other(arrays, m) for m in ("l2", "linf")}
    path = margins_figure(tmp_path / "m.png", bounds, results)
    assert path.stat().st_size > 10_000
    table = margins_table(json.loads(json.dumps(results, default=lambda o: o.to_dict())))
    assert table.count("\n") == 3 and "| linf | 50 |" in table


def test_cli_end_to_end_and_bad_options(tmp_path, mnist_dir, published_dir, capsys):
    from invariance_tradeoffs.simulations.cli import main

    assert main(["mnist", "margins", "--n-ti", "-1"]) == 2
    assert "--n-ti" in capsys.readouterr().err
    code = main(["mnist", "margins", "--out", str(tmp_path), "--n-test", "12", "--n-ti", "0",
                 "--no-train-separation", "--no-progress", "--data-dir", str(mnist_dir.parent),
                 "--published-dir", str(published_dir)])
    assert code == 0
    out = capsys.readouterr().out
    assert "| linf | 12 |" in out and "human ceiling linf/automated_eps03" in out
    saved = json.loads((tmp_path / "margins.json").read_text())
    assert saved["n_test"] == 12 and (tmp_path / "margins.png").is_file()
    assert (tmp_path / "nearest_test_12.npz").is_file()
    # the reproduction report takes the folder's table and figure (nothing recomputed)
    from invariance_tradeoffs.simulations.margins.report import margins_for_report

    section = margins_for_report(tmp_path, tmp_path / "report")
    assert (tmp_path / "report" / section["figure"]).is_file()
    text = "\n".join(section["lines"])
    assert "| linf | 12 |" in text and "Yang et al. report 0.812" in text
    # and refuses a folder without them before any work
    code = main(["reproduce", "--quick", "--out", str(tmp_path / "r"), "--margins",
                 str(tmp_path / "none"), "--no-progress"])
    assert code != 0 and "has no margins.json" in capsys.readouterr().err
