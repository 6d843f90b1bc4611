"""AutoAttack through torchattacks: sound (never below the exact robust accuracy), as strong
as the exact answer on linear models, inside the threat set, seeded, and wired into the
evaluation and the report."""

from __future__ import annotations

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchattacks")

from invariance_tradeoffs.simulations.attacks import autoattack as aa  # noqa: E402
from invariance_tradeoffs.simulations.certification import certify  # noqa: E402
from invariance_tradeoffs.simulations.models.adapters import (  # noqa: E402
    LinearModel,
    PyTorchModel,
    to_model_input,
)


@pytest.fixture(scope="module")
def digits(mnist_dir):
    from invariance_tradeoffs.simulations.data.mnist import load_mnist

    test = load_mnist("test", mnist_dir)
    return to_model_input(test.images[:40]), test.labels[:40]


@pytest.fixture(scope="module")
def linear(mnist_dir):
    """A multiclass linear model fitted on 2000 training images (seconds)."""
    from sklearn.linear_model import LogisticRegression

    from invariance_tradeoffs.simulations.data.mnist import load_mnist

    train = load_mnist("train", mnist_dir)
    x = to_model_input(train.images[:2000]).reshape(2000, -1)
    clf = LogisticRegression(max_iter=200).fit(x, train.labels[:2000])
    return LinearModel(clf.coef_, clf.intercept_)


@pytest.mark.parametrize("eps, n", [
    (0.1, 16),
    pytest.param(0.02, 40, marks=pytest.mark.slow),  # most points robust: the full ensemble
    pytest.param(0.05, 40, marks=pytest.mark.slow),
])
def test_autoattack_is_sound_and_exact_on_linear_models(linear, digits, eps, n):
    # For a linear model in the pixel box the worst case is exact (certification), so
    # AutoAttack's accuracy can never be below it (soundness) and should reach it.
    x, y = digits[0][:n], digits[1][:n]
    exact = certify(linear, x, y, eps)
    assert exact is not None and exact[1].startswith("exact")
    res = aa.autoattack(linear, x, y, eps)
    assert int((~res.success).sum()) >= int(exact[0].sum())
    assert int((~res.success).sum()) == int(exact[0].sum())


def test_examples_lie_in_the_threat_set_and_runs_are_seeded(linear, digits):
    x, y = digits
    a = aa.autoattack(linear, x[:10], y[:10], 0.1, seed=3)
    b = aa.autoattack(linear, x[:10], y[:10], 0.1, seed=3)
    assert np.array_equal(a.x_adv, b.x_adv) and np.array_equal(a.success, b.success)
    dist = np.abs(a.x_adv - x[:10]).reshape(10, -1).max(axis=1)
    assert dist.max() <= 0.1 + 1e-6 and a.x_adv.min() >= 0 and a.x_adv.max() <= 1
    # what was counted as broken is broken for the package's own model
    assert np.array_equal(linear.predict(a.x_adv) != y[:10], a.success)


def test_an_example_outside_the_ball_is_an_error(linear, digits, monkeypatch):
    import torchattacks

    class Overshoot:  # a broken ensemble: steps 2 eps away
        def __init__(self, model, *, eps, **kw):
            self.eps = eps

        def __call__(self, x, y):
            return (x + 2 * self.eps).clamp(0, 1)

    monkeypatch.setattr(torchattacks, "AutoAttack", Overshoot)
    x, y = digits
    with pytest.raises(RuntimeError, match="outside the l-inf ball"):
        aa.autoattack(linear, x[:5], y[:5], 0.1)


def test_missing_torchattacks_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchattacks", None)  # import now raises ImportError
    with pytest.raises(ImportError, match="pip install --no-deps 'torchattacks"):
        aa.require_torchattacks()


def test_attack_interface_and_bad_arguments(linear, digits):
    x, y = digits
    examples, success = aa.AutoAttack()(x[:4], y[:4], epsilons=[0.0, 0.3], model=linear)
    assert examples.shape == (2, 4, 1, 28, 28) and success.shape == (2, 4)
    assert np.array_equal(success[0], linear.predict(x[:4]) != y[:4])  # eps 0: no change
    with pytest.raises(ValueError, match="version must be one of"):
        aa.AutoAttack(version="best")
    with pytest.raises(ValueError, match="sensitivity attack: pass model="):
        aa.AutoAttack()(x[:2], y[:2], epsilons=[0.1])


def test_evaluation_reports_autoattack_beside_pgd(linear, digits, published_dir, mnist_dir):
    from invariance_tradeoffs.simulations.evaluation.agreement import (
        AutoAttackSettings,
        PGDSettings,
        sensitivity_report,
    )
    from invariance_tradeoffs.simulations.evaluation.report import evaluate

    x, y = digits
    rep = sensitivity_report(linear, x, y, 0.1, pgd=PGDSettings(steps=10, restarts=1),
                             autoattack=AutoAttackSettings(n=20))
    q_aa, q_cert = rep["autoattack_robust_accuracy"], rep["certified_robust_accuracy"]
    assert q_aa.n == 20 and q_cert.n == 40
    assert "upper bound" in q_aa.method or "upper bound" in str(q_aa.to_dict())
    from invariance_tradeoffs.simulations.data.published import load_published_examples

    sets = load_published_examples(published_dir, data_dir=mnist_dir)
    one = {"linf/automated_eps03": sets["linf/automated_eps03"]}
    report = evaluate(torch_model(linear), one, pgd=PGDSettings(steps=5, restarts=1),
                      autoattack=AutoAttackSettings(n=5))
    s = report.sets["linf/automated_eps03"]
    assert s.autoattack_robust_accuracy is not None and s.autoattack_robust_accuracy.n == 5
    assert "AutoAttack acc. (sources, upper bound)" in report.table()


def torch_model(linear: LinearModel) -> PyTorchModel:
    return linear.to_torch()
