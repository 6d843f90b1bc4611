"""docs/properties.md runs as written: its code blocks are executed, the true claim passes,
each folklore claim is falsified by the strategies on their own within the default budget
of 100 examples (derandomised, so in every run), and Hypothesis prints the counterexample
the page shows."""

from __future__ import annotations

import re
from pathlib import Path

import hypothesis
import numpy as np
import pytest
from hypothesis import Phase, given, settings

from invariance_tradeoffs.theory import covering_radius, is_good, nearest_neighbour_rule
from invariance_tradeoffs.theory import strategies as its
from invariance_tradeoffs.theory.theorem import tradeoff_lemma

DOC = Path(__file__).resolve().parents[2] / "docs" / "properties.md"
TEXT = DOC.read_text()
#: The Hypothesis version the printed counterexamples were captured with.
CAPTURED_WITH = re.search(r"captured with Hypothesis ([\d.]+)", TEXT).group(1)


@pytest.fixture(scope="module")
def examples() -> dict:
    scope: dict = {}
    for block in re.findall(r"```python\n(.*?)```", TEXT, flags=re.S):
        # a name, not the page's path: Hypothesis would read the Markdown as Python source
        exec(compile(block, "<docs/properties.md>", "exec"), scope)
    return scope


def printed(test) -> str:
    """Run a test expected to fail; what Hypothesis prints, without its Explanation."""
    with pytest.raises(AssertionError) as info:
        test()
    lines = [f"AssertionError: {info.value}"]
    for note in getattr(info.value, "__notes__", []):
        # Under CI Hypothesis adds a blank note and a @reproduce_failure blob: not the
        # counterexample, and not what a developer's run prints.
        if note.strip().startswith(("Explanation:", "You can reproduce")):
            break
        lines.append(note)
    return "\n".join(lines).rstrip()


def shown(name: str) -> str:
    """The output block the page shows under the example of test ``name``."""
    after = TEXT[TEXT.index(f"def {name}("):]
    return re.search(r"```text\n(.*?)\n```", after, flags=re.S).group(1)


def test_the_tradeoff_lemma_holds(examples):
    examples["test_tradeoff_lemma"]()


def test_the_lemma_check_fails_without_the_lemmas_hypothesis():
    # Any classifier (not only those constant on the balls): "misclassified or invariance
    # example wherever a witness exists" is false, and Hypothesis finds a classifier that
    # changes its label inside the ball.
    @settings(max_examples=100, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate])  # a failure is all this needs: no shrinking
    @given(its.scenarios())
    def broken(s):
        rep = tradeoff_lemma(s.points, s.oracle, s.f, s.distance, s.eps, s.points)
        assert np.all(np.isin(rep.case[rep.applies], ("misclassified", "invariance")))

    with pytest.raises(AssertionError):
        broken()


@pytest.mark.parametrize("name", ["test_perfect_nearest_neighbour_means_a_good_distance",
                                  "test_some_classifier_attains_the_ceiling"])
def test_each_folklore_claim_is_falsified_as_the_page_shows(examples, name):
    out = printed(examples[name])
    assert "Falsifying example:" in out and "FiniteWorld(" in out
    if hypothesis.__version__ == CAPTURED_WITH:
        assert out == shown(name)
    else:  # another Hypothesis may shrink elsewhere; the world is still a small one
        assert out.count("[") <= 12, out


def test_the_nearest_neighbour_claim_fails_without_a_tie():
    world = its.FiniteWorld([[0], [1], [2], [3]], [0, 0, 1, 1], distance="l1")
    X, y = world.labelled([0, 3])
    rule = nearest_neighbour_rule(X, y, world.distance)
    assert np.array_equal(rule(world.points), world.labels)  # perfect, no tie anywhere
    eps = covering_radius(world.points, X, world.distance).value
    assert eps == 1.0 and world.margins.values[1] == 1.0
    assert not is_good(world.margins, eps, world.weights)


def test_the_argument_errors_the_page_shows():
    for call, message in re.findall(r">>> (its\..*)\n(ValueError: .*)", TEXT):
        with pytest.raises(ValueError) as info:
            eval(call, {"its": its})
        assert f"ValueError: {info.value}" == message
