"""The l0 attack's acceptance test is the judge it is configured with (real MNIST)."""

from __future__ import annotations

import numpy as np
import pytest

from invariance_tradeoffs.simulations.attacks.l0 import BUDGETS, L0InvarianceAttack
from invariance_tradeoffs.simulations.attacks.l0.attack import batch_attack
from invariance_tradeoffs.simulations.attacks.l0.judges import KNNJudge, reads_as
from invariance_tradeoffs.theory.oracles import REJECT

N_TRAIN = 3000
FAST = BUDGETS["fast"]


# torch scoring and training in one thread (see tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")

@pytest.fixture(scope="module")
def mnist(mnist_dir):
    from invariance_tradeoffs.simulations.data.mnist import load_mnist

    return load_mnist("train", mnist_dir), load_mnist("test", mnist_dir)


class Spy:
    """A judge that records every image it is asked about and answers like ``inner``."""

    def __init__(self, inner):
        self.inner, self.n_images = inner, 0

    def __call__(self, imgs):
        self.n_images += len(imgs)
        return self.inner(imgs)


def test_a_judge_that_rejects_everything_makes_the_attack_fail(mnist):
    """If the attack fell back to its k-NN judge, it would succeed on this source."""
    train, test = mnist
    x, y = train.images[:N_TRAIN], train.labels[:N_TRAIN]
    knn = L0InvarianceAttack(x, y, random_state=3, search=FAST, targets={7: (9,)})
    assert knn.attack(test.images[0], int(test.labels[0]), key=0).success
    spy = Spy(lambda imgs: np.full(len(imgs), REJECT))
    never = L0InvarianceAttack(x, y, judge=spy, random_state=3, search=FAST,
                               targets={7: (9,)})
    r = never.attack(test.images[0], int(test.labels[0]), key=0)
    assert not r.success and r.target == REJECT and r.source_reading == REJECT
    assert spy.n_images > 1  # every candidate went to the configured judge
    assert "Spy" in never.get_params()["judge"]


def test_accepted_edits_are_those_the_configured_judge_reads_as_the_target(mnist):
    train, test = mnist
    x, y = train.images[:N_TRAIN], train.labels[:N_TRAIN]
    inner = KNNJudge(x, y, n_neighbors=3)  # not the default (10 neighbours)
    spy = Spy(inner)  # no `edits`: candidates are formed and judged as images
    attack = L0InvarianceAttack(x, y, judge=spy, random_state=3, search=FAST,
                                targets={2: (3, 7)})
    r = attack.attack(test.images[1], int(test.labels[1]), key=1)
    assert r.success and spy.n_images >= r.n_judged - 2
    assert reads_as(inner, r.example[None], r.target, min_confidence=0.5)[0]


def test_batch_attack_builds_the_named_judge(mnist, tmp_path):
    pytest.importorskip("torch")
    train, test = mnist
    opts = {"abs_config": "abs-tiny", "cache_dir": tmp_path}
    _, params = batch_attack(train, test, n_train=N_TRAIN, budget="fast", judge="abs",
                             judge_options=opts)
    assert params["judge_name"] == "abs" and params["judge"].startswith("ABSJudge('abs-tiny'")
    _, knn_params = batch_attack(train, test, n_train=N_TRAIN, budget="fast")
    assert knn_params["judge_name"] == "knn" and knn_params["judge"].startswith("KNNJudge")


@pytest.mark.slow
def test_batch_attack_examples_read_as_targets_to_the_abs_judge(mnist, tmp_path):
    """About a minute on a loaded 2-core machine: every candidate image is scored."""
    pytest.importorskip("torch")
    from invariance_tradeoffs.simulations.models.abs_judge import train_abs

    train, test = mnist
    opts = {"abs_config": "abs-tiny", "cache_dir": tmp_path}
    batch, _ = batch_attack(train, test, n_train=N_TRAIN, budget="fast", judge="abs",
                            judge_options=opts, random_state=3, targets={2: (1,)},
                            max_subsets=64)
    out = batch(np.array([1]))  # a 2
    ok = np.isfinite(out["distortion"])
    assert ok.any()
    judge = train_abs("abs-tiny", train.images, train.labels, cache_dir=tmp_path)
    # the examples read as their targets to the ABS judge (the k-NN judge need not agree)
    assert reads_as(judge, out["examples"][ok], out["targets"][ok], min_confidence=0.5).all()


def test_unknown_judge_names_are_errors(mnist, capsys, mnist_dir, tmp_path):
    from invariance_tradeoffs.simulations.cli import main

    train, test = mnist
    with pytest.raises(ValueError, match="judge must be one of knn, abs, proxy, ensemble"):
        batch_attack(train, test, n_train=N_TRAIN, judge="human")
    data_root = mnist_dir.parent if mnist_dir.name == "mnist" else mnist_dir
    assert main(["mnist", "attack", "l0", "--judge", "human", "--out", str(tmp_path),
                 "--data-dir", str(data_root)]) == 2
    assert "--judge" in capsys.readouterr().err
