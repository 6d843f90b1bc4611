"""Validation of judges against the published human labels (real sets when present)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from invariance_tradeoffs.simulations.attacks.l0.judges import (
    JUDGE_NAMES,
    KNNJudge,
    MeanJudge,
    ProbabilityJudge,
    build_judge,
    judge_labels,
)
from invariance_tradeoffs.simulations.evaluation.judge_validation import (
    judged_change_rate,
    validate_judges,
    validation_table,
)
from invariance_tradeoffs.theory.oracles import REJECT

# torch scoring and training in one thread (see tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")

@pytest.fixture(scope="module")
def sets(mnist_dir, published_dir):
    from invariance_tradeoffs.simulations.data.published import load_published_examples

    return load_published_examples(published_dir, data_dir=mnist_dir)


def _lookup(sets, which):
    """A judge answering, for each published example, ``which(set)``'s label."""
    table = {s.examples[i].tobytes(): int(lab) for s in sets.values()
             for i, lab in enumerate(which(s))}
    return lambda imgs: np.array([table[np.asarray(x, np.float64).tobytes()] for x in imgs])


def test_validation_on_the_real_published_sets(sets, mnist_dir):
    from invariance_tradeoffs.simulations.data.mnist import load_mnist

    train = load_mnist("train", mnist_dir)
    judges = {
        "human copy": _lookup(sets, lambda s: s.human_labels),
        "source label": _lookup(sets, lambda s: s.original_labels),
        "rejects all": lambda imgs: np.full(len(imgs), REJECT),
        "knn": KNNJudge(train.images[:5000], train.labels[:5000]),
    }
    res = validate_judges(judges, sets)
    n_all = sum(s.n for s in sets.values())
    n_changed = sum(int(s.human_changed.sum()) for s in sets.values())
    copy, src, rej = (res["judges"][k]["pooled"] for k in
                      ("human copy", "source label", "rejects all"))
    assert copy["n"] == n_all and copy["n_label_changed"] == n_changed
    assert float(copy["agreement"]) == 1 and float(copy["agreement_label_changed"]) == 1
    assert float(src["agreement_label_changed"]) == 0 and float(src["agreement_unchanged"]) == 1
    assert float(src["agreement"]) == pytest.approx(1 - n_changed / n_all)
    assert float(rej["agreement"]) == 0 and float(rej["reject_rate"]) == 1
    for name, pset in sets.items():
        r = res["judges"]["knn"]["sets"][name]
        agree = np.mean(res["labels"]["knn"][name] == pset.human_labels)
        assert float(r["agreement"]) == pytest.approx(agree)
        assert r["agreement"].low <= agree <= r["agreement"].high
    table = validation_table(res)
    assert table.count("\n") == 1 + len(judges) * (len(sets) + 1)
    assert "| knn | pooled |" in table


def test_judged_change_rate_counts_rejects_as_changes():
    judge = lambda imgs: np.array([1, 2, REJECT, 4])  # noqa: E731
    r = judged_change_rate(judge, np.zeros((4, 28, 28)), [1, 1, 1, 4], targets=[2, 2, 3, 5])
    assert float(r["changed"]) == 0.5 and float(r["rejected"]) == 0.25
    assert float(r["reads_as_target"]) == 0.25
    with pytest.raises(ValueError, match="original_labels"):
        judged_change_rate(judge, np.zeros((4, 28, 28)), [1, 1, 1])
    with pytest.raises(ValueError, match="targets"):
        judged_change_rate(judge, np.zeros((4, 28, 28)), [1, 1, 1, 1], targets=[1])


def test_judge_wrappers_and_the_ensemble():
    class Labeller:
        name = "fake"

        def predict_proba(self, x):
            assert x.shape[1:] == (1, 28, 28) and x.dtype == np.float32
            p = np.zeros((len(x), 10))
            p[:, 3] = 1
            return p

    pj = ProbabilityJudge(Labeller())
    mean = MeanJudge({"a": pj, "b": lambda imgs: np.full(len(imgs), 5),
                      "c": lambda imgs: np.full(len(imgs), REJECT)})
    probs = mean(np.zeros((2, 28, 28)))
    np.testing.assert_allclose(probs[:, [3, 5]], 1 / 3)
    assert probs.sum(axis=1).tolist() == pytest.approx([2 / 3, 2 / 3])
    assert judge_labels(mean, np.zeros((2, 28, 28))).tolist() == [3, 3]  # tie: lower class
    assert judge_labels(lambda imgs: np.zeros((len(imgs), 10)),
                        np.zeros((1, 28, 28))).tolist() == [REJECT]
    with pytest.raises(TypeError, match="predict_proba"):
        ProbabilityJudge(object())
    with pytest.raises(ValueError, match="judges"):
        MeanJudge({})
    with pytest.raises(ValueError, match="judges"):
        validate_judges({}, {"x": None})


def test_unknown_judge_name_is_an_error_naming_the_argument():
    with pytest.raises(ValueError, match="judge must be one of knn, abs, proxy, ensemble"):
        build_judge("human", np.zeros((10, 28, 28), np.uint8), np.arange(10))
    assert JUDGE_NAMES == ("knn", "abs", "proxy", "ensemble")


def test_judging_a_run_counts_failures_as_unchanged_and_draws_every_verdict(mnist_dir,
                                                                           tmp_path):
    from invariance_tradeoffs.simulations.attacks.runs import AttackRun
    from invariance_tradeoffs.simulations.data.mnist import load_mnist
    from invariance_tradeoffs.simulations.evaluation.judge_validation import (
        judge_run,
        run_table,
        save_verdict_grid,
    )

    test = load_mnist("test", mnist_dir)
    src = test.images[:4] / 255.0
    ex = src.copy()
    ex[1] = test.images[np.flatnonzero(test.labels == 8)[0]] / 255.0  # a real 8
    ex[2] = 0.0  # blank
    run = AttackRun(sources=src, source_indices=np.arange(4), source_labels=test.labels[:4],
                    examples=ex, targets=np.array([REJECT, 8, 3, 5]),
                    distortion=np.array([np.nan, 40.0, 90.0, 0.0]), params={},
                    extras={"seconds": np.ones(4)})
    # an oracle-like judge: 8 for the real 8, reject for the blank, else the source label
    known = {ex[1].tobytes(): 8, ex[2].tobytes(): REJECT}

    def oracle(imgs):
        return np.array([known.get(np.asarray(x, np.float64).tobytes(), int(y))
                         for x, y in zip(imgs, run.source_labels, strict=True)])

    judged = judge_run({"oracle": oracle}, run)
    r = judged["judges"]["oracle"]
    assert judged["n_failures"] == 1 and r["labels"].tolist() == [
        int(run.source_labels[0]), 8, REJECT, int(run.source_labels[3])]
    assert float(r["changed"]) == 0.5 and float(r["rejected"]) == 0.25
    assert float(r["reads_as_target"]) == 0.25
    table = run_table([("toy", run, judged)])
    assert "| toy | 65 | 1 | 4 | 0.500" in table
    png = save_verdict_grid(tmp_path / "v.png", run, judged["judges"], per_row=2, title="t")
    assert png.is_file() and png.stat().st_size > 1000
    with pytest.raises(ValueError, match="rows"):
        run_table([])


def test_pair_grid_checks_its_inputs(tmp_path):
    from invariance_tradeoffs.simulations.plotting import save_pair_grid

    a = np.zeros((3, 28, 28))
    with pytest.raises(ValueError, match="captions"):
        save_pair_grid(tmp_path / "x.png", a, a, ["a"])
    with pytest.raises(ValueError, match="sources and examples"):
        save_pair_grid(tmp_path / "x.png", a, a[:2], ["a", "b", "c"])
    with pytest.raises(ValueError, match="per_row"):
        save_pair_grid(tmp_path / "x.png", a, a, ["a", "b", "c"], per_row=0)


def test_judges_command_validates_and_judges_runs(mnist_dir, published_dir, tmp_path,
                                                  capsys):
    pytest.importorskip("torch")
    from invariance_tradeoffs.simulations.attacks.runs import AttackRun, save_run
    from invariance_tradeoffs.simulations.cli import main
    from invariance_tradeoffs.simulations.data.mnist import load_mnist

    test = load_mnist("test", mnist_dir)
    run_path = save_run(tmp_path / "toy.npz", AttackRun(
        sources=test.images[:3], source_indices=np.arange(3), source_labels=test.labels[:3],
        examples=test.images[[5, 1, 2]], targets=np.array([int(test.labels[5]), REJECT, 0]),
        distortion=np.array([9.0, np.nan, 1.0]), params={"attack": "l0"}))
    data_root = mnist_dir.parent if mnist_dir.name == "mnist" else mnist_dir
    base = ["mnist", "judges", "--judges", "knn", "abs", "--abs-config", "abs-tiny",
            "--cache-dir", str(tmp_path / "cache"), "--data-dir", str(data_root),
            "--published-dir", str(published_dir), "--no-progress"]
    assert main([*base, "--runs", str(tmp_path / "nope.npz")]) != 0
    assert "nope.npz" in capsys.readouterr().err
    assert main([*base, "--runs", str(run_path), "--json", str(tmp_path / "j.json")]) == 0
    out = capsys.readouterr().out
    assert "| knn | linf/automated_eps03 | 100 (21) |" in out
    assert "| abs | pooled | 200 (58) |" in out and f"| {tmp_path.name}/toy | 9 | 1 |" in out
    assert (tmp_path / "toy.judges.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "j.json").read_text())
    toy = saved["runs"][f"{tmp_path.name}/toy"]
    assert set(saved["judges"]) == {"knn", "abs"} and toy["n_failures"] == 1
    assert toy["judges"]["knn"]["labels"][1] == int(test.labels[1])
    assert main([*base[:3], "human"]) == 2


def test_memo_judge_answers_like_its_judge_and_calls_it_once_per_batch():
    from invariance_tradeoffs.simulations.attacks.l0.judges import MemoJudge

    calls = []

    def judge(imgs):
        calls.append(len(imgs))
        return np.full(len(imgs), 4)

    memo = MemoJudge(judge)
    x = np.random.default_rng(0).random((3, 28, 28))
    assert memo(x).tolist() == [4, 4, 4] and memo(x).tolist() == [4, 4, 4]
    assert calls == [3]
    memo(x[:2])
    assert calls == [3, 2]
    with pytest.raises(ValueError, match="images"):
        memo(np.zeros((2, 784)))
    with pytest.raises(TypeError, match="judge"):
        MemoJudge(3)
