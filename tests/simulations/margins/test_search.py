"""The pruned exact nearest-neighbour search equals brute force (issue 14).

Property: on random uint8 data with many ties (values drawn near 0, 128 and 255), every
distance of :class:`ExactSearch` equals the brute-force one, and every reported index
attains it (l0/l1/l2: the lowest such index, as brute force reports). The same property
fails -- hypothesis finds a counterexample -- when the l1 lower bound or the l-inf
pruning rule is deliberately broken. Then the same comparison on real MNIST.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from invariance_tradeoffs.simulations.margins import search as search_mod
from invariance_tradeoffs.simulations.margins.search import (
    METRICS,
    ExactSearch,
    brute_force_nearest,
    to_unit,
)

# Pixel values concentrated where ties and the binarisation threshold bite.
_VALUES = st.sampled_from([0, 0, 0, 1, 2, 100, 127, 128, 129, 200, 253, 254, 255, 255])


@st.composite
def problems(draw):
    d = draw(st.integers(1, 40))
    n = draw(st.integers(1, 60))
    m = draw(st.integers(1, 6))
    n_classes = draw(st.integers(1, 4))
    pixels = draw(st.lists(_VALUES, min_size=(n + m) * d, max_size=(n + m) * d))
    arr = np.array(pixels, dtype=np.uint8).reshape(n + m, d)
    # every class present at least once
    labels = np.array(draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n)))
    labels[: min(n, n_classes)] = np.arange(min(n, n_classes))
    batch = draw(st.integers(1, 4))
    return arr[:n], labels, arr[n:], batch


def _distance(a: np.ndarray, b: np.ndarray, metric: str) -> int:
    """One exact distance, written out independently of the module."""
    if metric == "l0":
        return int(np.sum((a >= 128) != (b >= 128)))
    v = np.abs(a.astype(np.int64) - b.astype(np.int64))
    return int({"l1": v.sum(), "l2": (v**2).sum(), "linf": v.max()}[metric])


def mismatch(problem) -> bool:
    """Whether the pruned search differs from brute force anywhere (a counterexample)."""
    train, labels, queries, batch = problem
    found = ExactSearch(train, labels, batch=batch).nearest(queries)
    for metric in METRICS:
        ref = brute_force_nearest(queries, train, labels, metric)
        got = found[metric]
        if not np.array_equal(got.distances, ref.distances):
            return True
        # the index attains the distance; l0/l1/l2 report the lowest such index
        attained = np.array([[_distance(q, train[j], metric) for j in row]
                             for q, row in zip(queries, got.indices, strict=True)])
        if not np.array_equal(attained, got.distances):
            return True
        if metric != "linf" and not np.array_equal(got.indices, ref.indices):
            return True
    return False


@pytest.fixture(params=["default", "small"])
def scan_settings(request, monkeypatch):
    """The l-inf scan's speed settings: the defaults probe nearly every image of small
    data, so the pruning itself is exercised with tiny ones too."""
    if request.param == "small":
        monkeypatch.setattr(search_mod, "_FIRST_BLOCKS", 1)
        monkeypatch.setattr(search_mod, "_PROBES", 1)
        monkeypatch.setattr(search_mod, "_PROBE_ABOVE", 3)
    return request.param


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(problem=problems())
def test_pruned_search_equals_brute_force(scan_settings, problem):
    assert not mismatch(problem)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(problem=problems(), seed=st.integers(0, 2**32 - 1))
def test_capped_search_reports_what_lies_below_the_cap(scan_settings, problem, seed):
    train, labels, queries, batch = problem
    search = ExactSearch(train, labels, batch=batch)
    rng = np.random.default_rng(seed)
    shape = (len(queries), len(np.unique(labels)))
    caps = {"l0": rng.integers(0, 40, shape), "l1": rng.integers(0, 3000, shape),
            "l2": rng.integers(0, 10**6, shape), "linf": rng.integers(0, 257, shape)}
    found = search.nearest(queries, below=caps)
    for metric, cap in caps.items():
        ref = brute_force_nearest(queries, train, labels, metric).distances
        got = found[metric]
        assert np.array_equal(got.distances, np.minimum(ref, cap)), metric
        assert np.array_equal(got.indices < 0, ref >= cap), metric


@pytest.mark.parametrize("broken", [("_L1_PER_SQ", 128.0), ("_L1_BLOCK_SLACK", -1),
                                    ("_L1_HELLINGER_SLACK", -1),
                                    ("_LINF_SLACK", 1)])
def test_the_property_catches_a_broken_bound(monkeypatch, broken):
    monkeypatch.setattr(search_mod, "_FIRST_BLOCKS", 1)
    monkeypatch.setattr(search_mod, "_PROBES", 1)
    monkeypatch.setattr(search_mod, "_PROBE_ABOVE", 3)
    monkeypatch.setattr(search_mod, *broken)
    found = find(problems(), mismatch,
                 settings=settings(max_examples=500, deadline=None, database=None,
                                   phases=[Phase.generate],  # no shrinking: faster
                                   suppress_health_check=list(HealthCheck)))
    assert mismatch(found)


def test_real_mnist_subset_equals_brute_force(mnist_dir):
    from invariance_tradeoffs.simulations.data.mnist import load_mnist

    train, test = load_mnist("train", mnist_dir), load_mnist("test", mnist_dir)
    rng = np.random.default_rng(14)
    pick = rng.choice(60000, 3000, replace=False)
    x, y = train.images[pick], train.labels[pick]
    q = test.images[:25]
    found = ExactSearch(x, y, batch=16).nearest(q)
    for metric in METRICS:
        ref = brute_force_nearest(q, x, y, metric)
        assert np.array_equal(found[metric].distances, ref.distances), metric
        if metric != "linf":
            assert np.array_equal(found[metric].indices, ref.indices), metric
    # units: linf and l1 on [0, 1] images, l2 the root
    assert np.allclose(to_unit(found["l2"].distances, "l2") ** 2 * 255**2,
                       found["l2"].distances)


def test_bad_input_names_the_argument():
    train = np.zeros((4, 9), np.uint8)
    with pytest.raises(TypeError, match="train_images"):
        ExactSearch(train.astype(float), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="train_labels"):
        ExactSearch(train, [0, 1, 0])
    with pytest.raises(ValueError, match="batch"):
        ExactSearch(train, [0, 1, 0, 1], batch=0)
    search = ExactSearch(train, [0, 1, 0, 1])
    with pytest.raises(ValueError, match="queries must have 9 pixels"):
        search.nearest(np.zeros((2, 8), np.uint8))
    with pytest.raises(TypeError, match="queries"):
        search.nearest(np.zeros((2, 9), np.int64))
    with pytest.raises(ValueError, match="metrics"):
        search.nearest(train, ["l3"])
    with pytest.raises(ValueError, match="metric"):
        to_unit(np.zeros(2), "cosine")
