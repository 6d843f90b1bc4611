"""Agreement with human labels, provably-wrong counts, the ceiling, and `mnist evaluate`."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from invariance_tradeoffs.simulations.data.published import PublishedSet
from invariance_tradeoffs.simulations.evaluation.agreement import (
    CERTIFY_SLACK,
    PGDSettings,
    agreement_stats,
    ceiling,
    evaluate_models,
    evaluate_set,
    sensitivity_report,
    summary_table,
)
from invariance_tradeoffs.simulations.models.adapters import LinearModel, NumpyModel
from invariance_tradeoffs.theory.oracles import REJECT
from invariance_tradeoffs.theory.results import proportion_estimate


@pytest.fixture(autouse=True)
def _one_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


# --------------------------------------------------------------------------- a hand-made set
ORIG = np.array([0, 0, 0, 0, 1, 1, 2, 3, 4, 5])
HUMAN = np.array([0, 0, 7, 7, 1, 6, 2, 3, 9, 5])  # changed at 2, 3, 5, 8
PIXEL = np.array([0.0, 0.04, 0.01, 0.03, 0.5, 0.9, 0.0, 0.0, 0.0, 0.0])  # pixel (0, 0)
RADIUS = 0.03


def _hand_set(norm: str = "linf", radius: float | None = RADIUS) -> PublishedSet:
    n = len(ORIG)
    sources = np.zeros((n, 28, 28))
    sources[:, 0, 0] = PIXEL
    sources[np.arange(n), 10, np.arange(n)] = 1.0  # make every source distinct
    examples = sources.copy()
    # Push pixel (0, 0) towards the pixel model's decision boundary, within the radius.
    examples[:, 0, 0] = np.clip(PIXEL + np.where(ORIG == 1, -RADIUS, RADIUS), 0, 1)
    examples[:, 5, 5] = RADIUS  # an irrelevant pixel moves too
    dist = np.abs(examples - sources).reshape(n, -1).max(axis=1)
    return PublishedSet(
        name="hand/eps003", norm=norm, radius=radius, source_indices=np.arange(n),
        sources=sources, examples=examples, original_labels=ORIG.copy(),
        human_labels=HUMAN.copy(), distortion=dist, violations=np.zeros(0, int), tol=1e-6,
        files=(),
    )


def _pixel_model() -> LinearModel:
    """z_0 = 0.5, z_1 = 10 * pixel(0, 0), other classes far below: predicts 1 iff pixel > 0.05.

    At radius 0.03 it is certified at a label-0 source iff pixel < 0.02 and at a label-1
    source iff pixel > 0.08; never at other labels. On the hand-made set: sources 0, 2, 4,
    5 are certified, and 2 and 5 (human label changed) are provably wrong.
    """
    w = np.zeros((10, 784))
    w[1, 0] = 10.0
    b = np.full(10, -100.0)
    b[0], b[1] = 0.5, 0.0
    return LinearModel(w, b, name="pixel")


def _copy_human(pset: PublishedSet) -> NumpyModel:
    table = {pset.examples[i].astype(np.float32).tobytes(): int(pset.human_labels[i])
             for i in range(pset.human_labels.shape[0])}
    # Unknown inputs (e.g. the sources, in the sensitivity report) get label 0.
    return NumpyModel(lambda x: np.array([table.get(row[0].tobytes(), 0) for row in x]),
                      name="copy")


def test_constant_model_agreement_by_hand():
    r = evaluate_set(NumpyModel(lambda x: np.zeros(len(x), int)), _hand_set(), pgd=None)
    assert r["n"] == 10 and r["n_label_changed"] == 4
    assert r["agreement"].value == 2 / 10  # human label 0 at 0 and 1
    assert r["agreement_label_changed"].value == 0.0
    assert r["agreement_unchanged"].value == 2 / 6
    assert r["agreement_label_changed"].n == 4 and r["agreement_unchanged"].n == 6
    assert r["provably_wrong"] is None and r["certification_method"] is None  # no certificate
    assert r["ceiling"].value == 0.6
    sens = r["sensitivity_on_sources"]
    assert sens["clean_accuracy"].value == 0.4  # original label 0 at 0..3
    assert sens["pgd_robust_accuracy"] is None and sens["certified_robust_accuracy"] is None


def test_model_copying_the_human_labels_agrees_everywhere():
    pset = _hand_set()
    r = evaluate_set(_copy_human(pset), pset, pgd=None)
    for key in ("agreement", "agreement_label_changed", "agreement_unchanged"):
        assert r[key].value == 1.0
    assert r["provably_wrong"] is None


def test_certified_linear_model_provably_wrong_count_by_hand():
    pset = _hand_set()
    model = _pixel_model()
    preds = model.predict(np.asarray(pset.examples[:, None], np.float32))
    # Sources 1 and 3 (pixel 0.04, 0.03) are pushed past the boundary 0.05: not robust.
    assert preds.tolist() == [0, 1, 0, 1, 1, 1, 0, 0, 0, 0]
    r = evaluate_set(model, pset, pgd=None)
    assert r["certification_method"].startswith("exact")
    assert r["certified_at_source"].value == 4 and r["certified_at_source"].kind == "exact"
    assert r["provably_wrong"].value == 2 and r["provably_wrong"].kind == "exact"
    assert r["certificate_violations"] == 0
    assert r["agreement_label_changed"].value == 0.0  # human says 7, 7, 6, 9
    assert r["agreement"].value == 2 / 10  # examples 0 and 4
    sens = r["sensitivity_on_sources"]
    assert sens["certified_robust_accuracy"].value == 4 / 10
    assert sens["certified_robust_accuracy"].extra["side_on_sample"].startswith("exact")


def test_provably_wrong_uses_the_example_distance_when_it_exceeds_the_radius():
    # Stated radius smaller than the examples' distance: certify at the distance instead.
    pset = replace(_hand_set(), radius=0.001)
    r = evaluate_set(_pixel_model(), pset, pgd=None)
    assert r["provably_wrong"].value == 2


def test_ibp_path_gives_the_same_counts_as_the_exact_path():
    pytest.importorskip("torch")
    r = evaluate_set(_pixel_model().to_torch(), _hand_set(), pgd=PGDSettings(steps=5, restarts=1))
    assert r["certification_method"].startswith("IBP")
    assert r["certified_at_source"].value == 4 and r["provably_wrong"].value == 2
    sens = r["sensitivity_on_sources"]
    # PGD can only find fewer-or-equal robust samples than... at least the certified ones.
    assert sens["pgd_robust_accuracy"].value >= sens["certified_robust_accuracy"].value


def test_broken_certificates_are_detected():
    # A claimed certificate on examples where the model agrees with a changed human label
    # is impossible; the arithmetic reports it instead of counting it as provably wrong.
    r = agreement_stats(HUMAN, HUMAN, ORIG, certified=np.ones(10, bool))
    assert r["provably_wrong"].value == 4 and r["certificate_violations"] == 4
    ok = agreement_stats(ORIG, HUMAN, ORIG, certified=np.ones(10, bool))
    assert ok["certificate_violations"] == 0


def test_l0_sets_get_agreement_but_no_certificate():
    pset = _hand_set(norm="l0", radius=None)
    r = evaluate_set(_pixel_model(), pset, pgd=None)
    assert r["agreement"] is not None and r["provably_wrong"] is None
    assert r["sensitivity_on_sources"] is None


def test_ceiling_and_its_interval():
    q = ceiling(HUMAN, ORIG, radius=RADIUS)
    ref = proportion_estimate(6, 10, "x")
    assert (q.value, q.low, q.high, q.n) == (0.6, ref.low, ref.high, 10)
    assert q.extra["radius"] == RADIUS
    # "no digit" (REJECT) counts as a changed label
    assert ceiling(np.array([REJECT, 1]), np.array([0, 1])).value == 0.5


def test_agreement_stats_validates_and_handles_empty_subsets():
    r = agreement_stats(ORIG, ORIG, ORIG)
    assert r["agreement_label_changed"] is None and r["n_label_changed"] == 0
    with pytest.raises(ValueError, match="human_labels must have length"):
        agreement_stats(ORIG, HUMAN[:5], ORIG)
    with pytest.raises(ValueError, match="certified"):
        agreement_stats(ORIG, HUMAN, ORIG, certified=np.ones(10))
    with pytest.raises(ValueError, match="out of range"):
        agreement_stats(ORIG + 10, HUMAN, ORIG)


def test_sensitivity_report_on_linear_model_is_exact():
    pset = _hand_set()
    rep = sensitivity_report(_pixel_model(), pset.sources, pset.original_labels, RADIUS,
                            pgd=None)
    assert rep["certification_method"].startswith("exact") and rep["pgd_robust_accuracy"] is None
    assert rep["certified_robust_accuracy"].value == 0.4
    with pytest.raises(ValueError, match="eps"):
        sensitivity_report(_pixel_model(), pset.sources, pset.original_labels, -1.0)


def test_evaluate_models_is_json_and_tabulates():
    pset = _hand_set()
    out = evaluate_models({"pixel": _pixel_model(),
                           "zero": NumpyModel(lambda x: np.zeros(len(x), int))},
                          {pset.name: pset}, pgd=None,
                          test_images=pset.sources, test_labels=pset.original_labels,
                          test_eps=(0.0, RADIUS))
    text = json.dumps(out)
    back = json.loads(text)
    assert back["sets"]["hand/eps003"]["n_label_changed"] == 4
    entry = back["models"]["pixel"]["published"]["hand/eps003"]
    assert entry["provably_wrong"]["value"] == 2 and entry["ceiling"]["kind"] == "estimate"
    assert [t["eps"] for t in back["models"]["pixel"]["test"]] == [0.0, RADIUS]
    table = summary_table(back)
    assert "2/4" in table and "zero" in table
    assert CERTIFY_SLACK < 1e-4


# --------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def real_sets(published_dir, mnist_dir):
    from invariance_tradeoffs.simulations.data.published import load_published_examples

    return load_published_examples(published_dir, data_dir=mnist_dir)


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo-cache")


def _consistent(r: dict) -> None:
    n, nc = r["n"], r["n_label_changed"]
    total = r["agreement"].value * n
    parts = (r["agreement_label_changed"].value * nc
             + r["agreement_unchanged"].value * (n - nc))
    assert abs(total - parts) < 1e-9
    assert r["certificate_violations"] == 0
    assert r["provably_wrong"].value <= min(r["certified_at_source"].value, nc)


def test_real_ceilings_match_the_published_rates(real_sets):
    assert real_sets["linf/automated_eps03"].n == 100
    # 21% and 37% of the automated examples changed their human label (paper, Table 1).
    assert ceiling(real_sets["linf/automated_eps03"].human_labels,
                   real_sets["linf/automated_eps03"].original_labels).value == 0.79
    assert ceiling(real_sets["linf/automated_eps04"].human_labels,
                   real_sets["linf/automated_eps04"].original_labels).value == 0.63


def test_real_sets_with_tiny_linear_models(real_sets, mnist_dir, real_cache):
    from invariance_tradeoffs.simulations.data.mnist import load_mnist
    from invariance_tradeoffs.simulations.models.zoo import get_config, train

    tr = load_mnist("train", mnist_dir)
    for name in ("tiny-robust-linear", "tiny-knn"):
        model = train(get_config(name), tr.images, tr.labels, cache_dir=real_cache).model
        for pset in real_sets.values():
            r = evaluate_set(model, pset, pgd=None)
            if name == "tiny-knn":
                assert r["provably_wrong"] is None
                continue
            _consistent(r)
            # The copy-human model agrees on every real example.
    pset = real_sets["linf/automated_eps04"]
    assert evaluate_set(_copy_human(pset), pset, pgd=None)["agreement"].value == 1.0


def test_real_sets_with_a_tiny_cnn(real_sets, mnist_dir, real_cache):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from invariance_tradeoffs.simulations.data.mnist import load_mnist
    from invariance_tradeoffs.simulations.models.zoo import get_config, train

    tr = load_mnist("train", mnist_dir)
    model = train(get_config("tiny-ibp"), tr.images, tr.labels, cache_dir=real_cache).model
    pset = real_sets["linf/automated_eps03"]
    r = evaluate_set(model, pset, pgd=PGDSettings(steps=5, restarts=1))
    _consistent(r)
    sens = r["sensitivity_on_sources"]
    assert sens["certified_robust_accuracy"].value <= sens["pgd_robust_accuracy"].value
    assert sens["pgd_robust_accuracy"].value <= sens["clean_accuracy"].value


# --------------------------------------------------------------------------- CLI
def _evaluate(argv: list[str], capsys) -> tuple[int, str, str]:
    from invariance_tradeoffs.simulations.cli import main

    code = main(["mnist", "evaluate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_evaluate_json_on_the_real_release(published_dir, mnist_dir, real_cache, capsys):
    code, out, _ = _evaluate(["--model", "tiny-robust-linear", "--model", "tiny-knn",
                              "--published-dir", str(published_dir), "--data-dir",
                              str(mnist_dir), "--cache-dir", str(real_cache), "--train",
                              "--no-pgd", "--no-progress", "--json"], capsys)
    assert code == 0
    res = json.loads(out)
    assert set(res) == {"sets", "models", "published_dir", "missing_sets"}
    assert set(res["missing_sets"]) == {"linf/manual_eps04", "l0/automated"} - set(res["sets"])
    assert res["sets"]["linf/automated_eps04"]["n_label_changed"] == 37
    lin = res["models"]["tiny-robust-linear"]["published"]["linf/automated_eps03"]
    assert lin["certification_method"].startswith("exact")
    assert lin["certificate_violations"] == 0
    assert res["models"]["tiny-knn"]["published"]["linf/automated_eps03"]["provably_wrong"] is None


def test_cli_evaluate_works_on_any_folder_in_the_published_layout(
        published_dir, mnist_dir, real_cache, tmp_path, capsys):
    # A folder of one's own sets in the release's format (20 sources), found by name.
    idx = np.load(published_dir / "indexs.npy")[:20]
    ex = np.load(published_dir / "linf" / "automated_eps03.npy")[:20]
    lab = np.load(published_dir / "linf" / "automated_eps03_labels.npy")[:20]
    (tmp_path / "rel" / "linf").mkdir(parents=True)
    np.save(tmp_path / "rel" / "indexs.npy", idx)
    np.save(tmp_path / "rel" / "linf" / "subset_eps03.npy", ex)
    np.save(tmp_path / "rel" / "linf" / "subset_eps03_labels.npy", lab)
    np.save(tmp_path / "rel" / "linf" / "mine_eps02.npy", ex.astype(np.uint8))
    np.save(tmp_path / "rel" / "linf" / "mine_eps02_labels.npy", lab)
    code, out, _ = _evaluate(["--model", "tiny-robust-linear", "--published-dir",
                              str(tmp_path / "rel"), "--data-dir", str(mnist_dir),
                              "--cache-dir", str(real_cache), "--train", "--no-pgd", "--json"],
                             capsys)
    assert code == 0
    res = json.loads(out)
    assert set(res["sets"]) == {"linf/subset_eps03", "linf/mine_eps02"}
    assert res["sets"]["linf/subset_eps03"]["n"] == 20
    assert res["sets"]["linf/subset_eps03"]["radius"] == 0.3
    mine = res["models"]["tiny-robust-linear"]["published"]["linf/mine_eps02"]
    assert mine["radius"] == 0.2 and mine["certificate_violations"] == 0
    # table output names every model/set pair
    code, out, _ = _evaluate(["--model", "tiny-robust-linear", "--published-dir",
                              str(tmp_path / "rel"), "--data-dir", str(mnist_dir),
                              "--cache-dir", str(real_cache), "--no-pgd"], capsys)
    assert code == 0 and "linf/mine_eps02" in out
    # a modified copy at the release's own path is refused by its checksum, by name
    np.save(tmp_path / "rel" / "linf" / "automated_eps03_labels.npy", lab)
    np.save(tmp_path / "rel" / "linf" / "automated_eps03.npy", ex)
    code, _, err = _evaluate(["--model", "tiny-robust-linear", "--published-dir",
                              str(tmp_path / "rel"), "--data-dir", str(mnist_dir),
                              "--cache-dir", str(real_cache), "--no-pgd"], capsys)
    assert code == 2 and "automated_eps03" in err and "corrupted" in err


def test_cli_evaluate_refuses_untrained_models(published_dir, mnist_dir, tmp_path, capsys):
    code, _, err = _evaluate(["--model", "tiny-knn", "--published-dir", str(published_dir),
                              "--data-dir", str(mnist_dir), "--cache-dir", str(tmp_path)],
                             capsys)
    assert code == 2 and "not trained" in err and "--train" in err
    code, _, err = _evaluate(["--model", "no-such-model", "--published-dir",
                              str(published_dir), "--data-dir", str(mnist_dir)], capsys)
    assert code == 2 and "unknown model" in err


# --------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_pgd_training_does_not_raise_agreement_on_label_changed_examples(
        real_sets, mnist_dir, tmp_path):
    """The paper's finding in miniature: a (tiny) PGD-trained model agrees with the humans
    on label-changed invariance examples no more often than the undefended one trained on
    the same data (3000 images, one epoch, tiny CNN; seconds on one core)."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from invariance_tradeoffs.simulations.data.mnist import load_mnist
    from invariance_tradeoffs.simulations.models.zoo import get_config, train

    tr = load_mnist("train", mnist_dir)
    agree = {}
    for name in ("tiny-standard", "tiny-pgd"):
        cfg = replace(get_config(name), n_train=3000)
        model = train(cfg, tr.images, tr.labels, cache_dir=tmp_path).model
        agree[name] = [evaluate_set(model, s, pgd=None)["agreement_label_changed"].value
                       for s in real_sets.values()]
    assert all(p <= s for p, s in zip(agree["tiny-pgd"], agree["tiny-standard"], strict=True)), \
        agree
