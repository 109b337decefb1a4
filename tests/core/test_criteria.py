import numpy as np
import pytest

from tfopt.core import criteria


@pytest.mark.parametrize("name,cls", [("magnitude", criteria.Magnitude), ("l2", criteria.L2),
                                      ("random", criteria.Random), ("taylor", criteria.Taylor)])
def test_get_resolves_names(name, cls):
    assert isinstance(criteria.get(name), cls)


def test_unknown_criterion_is_explained():
    with pytest.raises(ValueError, match="Unknown pruning criterion 'size'.*'taylor'"):
        criteria.get("size")


def test_magnitude_and_l2_scores():
    w = np.array([[-3.0, 1.0], [0.5, -2.0]])
    np.testing.assert_array_equal(criteria.Magnitude().scores(w, None, "k"), np.abs(w))
    np.testing.assert_array_equal(criteria.L2().scores(w, None, "k"), w ** 2)


def test_random_is_seeded_per_weight():
    w = np.zeros((5, 5))
    a = criteria.Random(seed=1).scores(w, None, "dense/kernel")
    assert np.array_equal(a, criteria.Random(seed=1).scores(w, None, "dense/kernel"))
    assert not np.array_equal(a, criteria.Random(seed=2).scores(w, None, "dense/kernel"))
    assert not np.array_equal(a, criteria.Random(seed=1).scores(w, None, "other/kernel"))


def test_taylor_uses_gradient_statistic_and_falls_back_to_magnitude():
    w = np.array([1.0, -2.0, 3.0])
    taylor = criteria.Taylor()
    np.testing.assert_array_equal(taylor.scores(w, np.zeros(3), "k"), np.abs(w))
    stat = np.array([0.5, 0.1, 0.2])
    np.testing.assert_array_equal(taylor.scores(w, stat, "k"), stat)
    np.testing.assert_allclose(taylor.observe(w, np.array([2.0, 1.0, -1.0])), [2.0, 2.0, 3.0])


def test_core_custom_needs_a_keras_path_to_read_a_serialized_function():
    with pytest.raises(TypeError, match="tfopt.pruning.Custom"):
        criteria.Custom({"class_name": "function", "config": "f"})


@pytest.mark.parametrize("fn,match", [
    (lambda w: np.abs(w), r"must take two arguments, \(weights, gradients\)"),
    (lambda w, g, h: np.abs(w), r"must take two arguments"),
    (lambda w, g: np.ones(3), r"returned scores of shape \(3,\) for a weight of shape \(3, 4\)"),
    (lambda w, g: w.missing, r"failed on a test weight of shape \(3, 4\).*AttributeError"),
])
def test_custom_criterion_is_checked_when_created_not_inside_fit(fn, match):
    with pytest.raises(ValueError, match=match):
        criteria.Custom(fn)


def test_custom_criterion_must_return_one_score_per_weight_of_every_layer():
    criterion = criteria.Custom(lambda w, g: np.abs(w) if w.shape == (3, 4) else np.ones(3))
    with pytest.raises(ValueError, match="returned scores of shape"):
        criterion.scores(np.zeros((2, 2)), None, "k")


@pytest.mark.parametrize("make,match", [
    (lambda: criteria.Taylor(decay=1.0), r"\[0, 1\)"),
    (lambda: criteria.Random(seed="x"), "integer seed"),
    (lambda: criteria.Custom(3), "needs a callable"),
    (lambda: criteria.Custom(np.abs, decay="0.9"), r"decay=...\) must be a number in \[0, 1\)"),
])
def test_bad_arguments_are_explained(make, match):
    with pytest.raises(ValueError, match=match):
        make()
