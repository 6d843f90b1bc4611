"""Library edges (issue 11, items 8-9): each test reproduces a failure found by probing the
library as a hostile user would, and passes now.

* ``ClosedForm.subs`` ran strings through ``sympy.sympify`` (which evaluates code);
* complex input was cast to real with a ``ComplexWarning`` and a wrong distance;
* ``TableOracle`` looked rows up by their bytes, so ``-0.0`` was not ``0.0``;
* ``Margins`` accepted mismatched lengths and NaN;
* the glyph-digits oracle labelled inputs outside ``[0, 1]^d``, below its exact margins;
* a misclassified input is its own sensitivity example at ``eps = 0``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from invariance_tradeoffs.theory.distances import LpDistance, get_distance
from invariance_tradeoffs.theory.examples import find_examples, is_sensitivity_example
from invariance_tradeoffs.theory.margins import (
    Margins,
    ceiling_from_margins,
    good_radius_from_margins,
    oracle_margin,
)
from invariance_tradeoffs.theory.oracles import REJECT, FunctionOracle, TableOracle
from invariance_tradeoffs.theory.symbolic import overly_robust_ceiling, sphere_good_radius
from invariance_tradeoffs.theory.toys import GlyphDigits
from invariance_tradeoffs.theory.toys.glyphs import SEGMENTS
from invariance_tradeoffs.theory.validation import as_batch, as_real_vector

# ------------------------------------------------------------------- ClosedForm.subs


class _Tripwire:
    """Records whether code smuggled in through a string was executed."""

    fired = False


@pytest.mark.parametrize("value", [
    "__import__('tests.theory.test_edges', fromlist=['_Tripwire'])._Tripwire.__setattr__"
    "('fired', True) or 0.2",
    "0.2",
    b"0.2",
    True,
    np.array([0.2]),
    [0.2],
    None,
    1 + 2j,
])
def test_subs_refuses_strings_and_non_numbers(value):
    form = overly_robust_ceiling()
    with pytest.raises(TypeError, match="a must be a real number or a SymPy expression"):
        form.subs(a=value)
    assert not _Tripwire.fired, "a string passed to subs was evaluated as code"


def test_subs_accepts_real_numbers_and_sympy_objects():
    form = overly_robust_ceiling()
    for a in (sp.Rational(1, 5), 0.2, np.float64(0.2), np.float32(0.2)):
        fixed = form.subs(a=a, b=1)
        assert [str(s) for s in fixed.args] == ["eps"]
        assert float(fixed(np.array(0.6))) == pytest.approx(0.5, rel=1e-6)
    assert form.subs(b=np.int64(3)).expr.has(sp.Integer(3))
    radius = sphere_good_radius("l2")
    r2 = radius.args[1]
    half = radius.subs(r1=r2 / 2)  # an expression in a remaining argument
    assert half.args == (r2, radius.args[2]) and sp.simplify(half.expr - r2 / 4) == 0
    with pytest.raises(ValueError, match="a must be finite"):
        form.subs(a=float("nan"))
    with pytest.raises(ValueError, match="has no argument"):
        form.subs(c=1.0)


# ------------------------------------------------------------------- complex input


@pytest.mark.parametrize("norm", ["l0", "l1", "l2", "linf"])
def test_distances_refuse_complex_input(norm):
    d = get_distance(norm)
    X = np.array([[1j, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning on the way to the error
        with pytest.raises(TypeError, match="X must be real, got complex dtype complex128"):
            d(X, np.zeros((1, 2)))
        with pytest.raises(TypeError, match="Y must be real"):
            d.pairwise(np.zeros((1, 2)), X)


def test_complex_is_refused_everywhere_a_batch_or_vector_is_read():
    z = np.array([[0.5 + 0.0j, 1.0]])
    with pytest.raises(TypeError, match="X must be real"):
        as_batch(z)  # even with a zero imaginary part: the dtype is what is checked
    with pytest.raises(TypeError, match="margins must be real"):
        as_real_vector(np.array([1.0 + 1j]), "margins")
    with pytest.raises(TypeError, match="margins must be real"):
        good_radius_from_margins(np.array([1.0 + 0j]), exact=True)
    with pytest.raises(TypeError, match="weights must be real"):
        good_radius_from_margins([1.0, 2.0], weights=np.array([0.5, 0.5 + 0j]), exact=True)
    with pytest.raises(TypeError, match="eps_grid must be a numeric array of radii"):
        ceiling_from_margins([1.0], np.array([0.5 + 0j]), exact=True)
    oracle = FunctionOracle(lambda X: (X[:, 0] > 0).astype(int), n_classes=2)
    with pytest.raises(TypeError, match="X must be real"):
        oracle(np.array([[1j]]))


def test_real_input_is_unchanged():
    np.testing.assert_array_equal(as_batch([[1, 2]]), [[1.0, 2.0]])
    np.testing.assert_array_equal(as_batch([[True, False]]), [[1.0, 0.0]])  # bool masks
    assert float(LpDistance(2)(np.array([[3.0, 4.0]]), np.zeros((1, 2)))[0]) == 5.0


# ------------------------------------------------------------------- TableOracle and -0.0


def test_table_oracle_labels_minus_zero_like_zero():
    oracle = TableOracle(np.array([[0.0, 1.0], [2.0, 0.0]]), [0, 1], n_classes=2)
    assert oracle(np.array([[-0.0, 1.0], [2.0, -0.0]])).tolist() == [0, 1]
    assert oracle.index_of(np.array([[-0.0, 1.0]])).tolist() == [0]
    stored_negative = TableOracle(np.array([[-0.0]]), [1], n_classes=2)
    assert stored_negative(np.array([[0.0]])).tolist() == [1]
    with pytest.raises(ValueError, match="points must be distinct"):
        TableOracle(np.array([[0.0], [-0.0]]), [0, 1], n_classes=2)


def test_minus_zero_candidates_still_cover_the_domain():
    pts = np.array([[0.0], [1.0], [2.0]])
    oracle = TableOracle(pts, [0, REJECT, 1], n_classes=2)
    cands = np.array([[-0.0], [1.0], [2.0]])
    assert oracle.covers(cands) and not oracle.covers(cands[1:])
    m = oracle_margin(pts, oracle, "l1", cands)
    assert m.exact and m.values.tolist() == [2.0, 1.0, 2.0]
    res = find_examples(pts, cands, oracle, lambda X: np.zeros(len(X), int), "l1", 2.0)
    assert res.exhaustive


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5]), min_size=3, max_size=3))
def test_table_lookup_depends_on_values_not_on_the_sign_of_zero(row):
    pts = np.array([[0.0, 0.0, 0.0], [1.0, -1.0, 0.5]])
    oracle = TableOracle(pts, [0, 1], n_classes=2, outside=REJECT)
    x = np.array([row])
    expected = next((i for i, p in enumerate(pts) if np.array_equal(p, x[0])), REJECT)
    assert oracle(x).tolist() == [expected]


# ------------------------------------------------------------------- Margins


def test_margins_refuse_mismatched_lengths_nan_and_bad_types():
    with pytest.raises(ValueError, match="witness must have one entry per margin"):
        Margins(np.array([1.0, 2.0]), np.array([0]), True, "m")
    with pytest.raises(ValueError, match="values contains NaN"):
        Margins(np.array([1.0, np.nan]), np.array([0, 1]), True, "m")
    with pytest.raises(ValueError, match="values must be >= 0"):
        Margins(np.array([-1.0]), np.array([0]), True, "m")
    with pytest.raises(ValueError, match="values must be a non-empty 1-D"):
        Margins(np.array([[1.0]]), np.array([0]), True, "m")
    with pytest.raises(TypeError, match="witness must be a 1-D integer array"):
        Margins(np.array([1.0]), np.array([0.5]), True, "m")
    with pytest.raises(ValueError, match="witness must hold candidate indices"):
        Margins(np.array([1.0]), np.array([-2]), True, "m")
    with pytest.raises(TypeError, match="exact must be a bool"):
        Margins(np.array([1.0]), np.array([0]), "yes", "m")
    with pytest.raises(TypeError, match="values must be real"):
        Margins(np.array([1.0 + 0j]), np.array([0]), True, "m")


def test_valid_margins_are_kept_as_given():
    m = Margins([1.0, np.inf], [3, -1], np.True_, "hand-made")
    assert m.values.dtype == float and m.witness.dtype == np.int64 and m.exact is True
    assert good_radius_from_margins(m, weights=[0.5, 0.5]).value == 1.0
    assert len(m) == 2 and m.kind == "exact"


# ------------------------------------------------------------------- glyph domain


def _segment(fam: GlyphDigits, name: str) -> np.ndarray:
    return fam.segment_index[SEGMENTS.index(name)]


def test_glyph_oracle_rejects_inputs_outside_the_box():
    """The probe: one pixel of an 8 set to -1 made a 6 at l0 distance 1, below the exact
    good radius 2. Outside [0, 1]^d the oracle now rejects, so no class is that close."""
    fam = GlyphDigits()
    eight = fam.faintest([8])
    assert fam.good_radius("l0").value == 2.0 and fam.margin(eight, "l0")[0] == 2.0
    probe = eight.copy()
    probe[0, _segment(fam, "b")[0]] = -1.0  # segment b (upper right) of 8 -> a 6 before
    assert fam.oracle(probe).tolist() == [REJECT]
    above = eight.copy()
    above[0, _segment(fam, "g")[0]] = 7.0  # pushing ink above 1 is no image either
    assert fam.oracle(above).tolist() == [REJECT]
    for norm in fam.norms:
        with pytest.raises(ValueError, match=r"outside \[0, 1\].*box"):
            fam.margin(probe, norm)
    with pytest.raises(ValueError, match="outside"):
        fam.flip_costs(probe, "l1")
    edges = eight.copy()
    edges[0, :] = np.where(edges[0] > 0.5, 1.0, 0.0)  # the box is closed
    assert fam.oracle(edges).tolist() == [8]


GLYPHS = GlyphDigits()
SEGMENT_PIXELS = np.concatenate(GLYPHS.segment_index)


@settings(max_examples=60, deadline=None)
@given(digit=st.integers(0, 9), seed=st.integers(0, 2**16),
       pixels=st.lists(st.integers(0, SEGMENT_PIXELS.size - 1), min_size=1, max_size=3,
                       unique=True),
       value=st.one_of(st.floats(-3.0, 4.0), st.sampled_from([-1.0, 0.0, 1.0, 2.0])))
def test_no_input_of_another_class_is_closer_than_the_glyph_margin(digit, seed, pixels,
                                                                  value):
    """Soundness of the exact margins on all of R^d, not only on the box: set a few
    segment pixels of support images to any value (inside or outside [0, 1]); if the
    oracle then names another class, the change is at least the margin, in every norm."""
    fam = GLYPHS
    x = np.vstack([fam.sample(1, seed=seed)[0], fam.faintest([digit])])
    moved = x.copy()
    moved[:, SEGMENT_PIXELS[pixels]] = value
    label, new = fam.oracle(x), fam.oracle(moved)
    other = (new != label) & (new != REJECT)
    for norm in fam.norms:
        dist = get_distance(norm)(x, moved)
        margin = fam.margin(x, norm)
        assert np.all(dist[other] >= margin[other] - 1e-9), (norm, dist, margin, label, new)


# ------------------------------------------------------------------- sensitivity at eps 0


@pytest.mark.parametrize("f_label, o_label, expected", [
    (1, 0, True),  # misclassified: x is its own sensitivity example
    (0, REJECT, True),  # the oracle rejects, f names a class
    (REJECT, REJECT, False),  # both reject: correct
    (0, 0, False),  # correct
])
def test_an_incorrect_input_is_its_own_sensitivity_example_at_eps_0(f_label, o_label,
                                                                   expected):
    x = np.array([[0.0]])
    oracle = FunctionOracle(lambda X: np.full(len(X), o_label), n_classes=2)
    f = FunctionOracle(lambda X: np.full(len(X), f_label), n_classes=2)
    got = is_sensitivity_example(x, x, oracle, f, LpDistance(2), 0.0)
    assert got.tolist() == [expected]
    search = find_examples(x, x, oracle, f, LpDistance(2), 0.0, exhaustive=True)
    assert search.has_sensitivity.tolist() == [not bool(search.correct[0])]
