"""Tests of the drift measures: PSI and KS against hand-computed values, input and class drift."""

import math

import numpy as np
import pytest

from tfopt.serving import _drift

EPS = _drift.EPSILON


def _psi_by_hand(reference_shares, current_shares):
    return sum((c - r) * math.log(c / r) for r, c in zip(reference_shares, current_shares))


@pytest.mark.parametrize("reference, current, bins, shares", [
    # Two bins split at the reference's median 1.5: {0, 1} and {2, 3}.
    ([0, 1, 2, 3], [0, 0, 0, 3], 2, ([0.5, 0.5], [0.75, 0.25])),
    # An empty current bin counts as EPSILON.
    ([0, 1, 2, 3], [0, 0, 1, 1], 2, ([0.5, 0.5], [1.0, EPS])),
    # A constant reference still separates the values above it.
    ([1, 1, 1, 1], [2, 2, 2, 2], 10, ([1.0, EPS], [EPS, 1.0])),
    # Values beyond the reference's range land in its outer bins.
    ([0, 1, 2, 3], [-5, 9, 9, 9], 2, ([0.5, 0.5], [0.25, 0.75])),
    ([0, 1, 2, 3], [3, 2, 1, 0], 2, ([0.5, 0.5], [0.5, 0.5])),
])
def test_psi_matches_the_hand_computed_value(reference, current, bins, shares):
    assert _drift.psi(np.array(reference, float), np.array(current, float), bins=bins) == \
        pytest.approx(_psi_by_hand(*shares))


def test_psi_of_the_docstring_example_and_quantile_bins():
    assert round(_drift.psi(np.arange(100.0), np.arange(100.0) + 50), 2) == 4.35
    # Ten reference bins of 10 values each; current fills only the first: 0.1 -> 1.0 and
    # nine bins 0.1 -> EPSILON.
    expected = _psi_by_hand([0.1] * 10, [1.0] + [EPS] * 9)
    assert _drift.psi(np.arange(100.0), np.zeros(30)) == pytest.approx(expected)


@pytest.mark.parametrize("reference, current, distance", [
    ([1, 2, 3, 4], [3, 4, 5, 6], 0.5),     # ECDFs differ most at 2: 0.5 against 0
    ([1, 2, 3, 4], [1, 2, 3, 4], 0.0),
    ([1, 2, 3], [10, 11], 1.0),             # disjoint
    ([0, 0, 0, 1], [0, 1, 1, 1], 0.5),      # at 0: 0.75 against 0.25
])
def test_ks_matches_the_hand_computed_distance(reference, current, distance):
    assert _drift.ks(np.array(reference, float), np.array(current, float)) == \
        pytest.approx(distance)


def test_class_psi_compares_class_shares():
    assert _drift.class_psi(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1]), 2) == \
        pytest.approx(_psi_by_hand([0.5, 0.5], [0.75, 0.25]))
    # A class never predicted in the logs counts as EPSILON, not as log(0).
    assert _drift.class_psi(np.array([0, 1, 2]), np.array([0, 1, 1]), 3) == \
        pytest.approx(_psi_by_hand([1 / 3] * 3, [1 / 3, 2 / 3, EPS]))


def test_input_drift_reports_summaries_and_the_top_elements_by_name():
    rng = np.random.default_rng(0)
    reference = rng.random((300, 4, 2))
    current = rng.random((300, 4, 2))
    current[:, 1, 0] += 2  # one element moves
    summary, top, elements = _drift.input_drift(reference, current, top_k=3)
    assert [d.name for d in summary] == ["mean", "std", "min", "max"]
    assert elements == 8 and len(top) == 3
    assert top[0].name == "[1,0]" and top[0].drifted and top[0].ks == 1.0
    assert not any(d.drifted for d in top[1:])
    # The moved element raises each example's mean, spread and maximum, not its minimum.
    assert [d.name for d in summary if d.drifted] == ["mean", "std", "max"]


@pytest.mark.parametrize("psi_threshold, ks_threshold, drifted", [
    (0.25, 0.99, True), (100.0, 0.2, True), (100.0, 0.99, False)])
def test_either_threshold_flags_a_feature(psi_threshold, ks_threshold, drifted):
    reference = np.arange(200.0).reshape(200, 1)
    summary, top, _ = _drift.input_drift(reference, reference + 60, psi_threshold, ks_threshold)
    assert top[0].drifted is drifted and top[0].name == "[0]"


def test_scalar_inputs_have_one_element_named_value():
    _, top, elements = _drift.input_drift(np.arange(50.0), np.arange(50.0))
    assert (elements, top[0].name, top[0].psi, top[0].drifted) == (1, "value", 0.0, False)


@pytest.mark.parametrize("output, classes", [
    (np.array([[0.1, 0.9], [0.8, 0.2]]), [1, 0]), (np.zeros((3,)), None),
    (np.zeros((3, 1)), None), (np.zeros((3, 2, 2)), None)])
def test_predicted_classes_only_for_batch_by_classes_outputs(output, classes):
    result = _drift.predicted_classes(output)
    assert (result is None) if classes is None else result.tolist() == classes


@pytest.mark.parametrize("call, message", [
    (lambda: _drift.psi(np.array([]), np.array([1.0])), "reference sample is empty"),
    (lambda: _drift.ks(np.array([1.0]), np.array([])), "current sample is empty"),
    (lambda: _drift.psi(np.array([1.0, np.nan]), np.array([1.0])), "reference sample holds NaN"),
    (lambda: _drift.ks(np.array([1.0]), np.array([np.inf])), "current sample holds NaN"),
    (lambda: _drift.input_drift(np.zeros((5, 4)), np.zeros((5, 3))),
     "reference has 4 values per example, the logs 3"),
])
def test_bad_samples_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
