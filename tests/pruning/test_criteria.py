import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfopt import pruning
from tfopt.pruning import _criteria
from tests.conftest import assert_config_round_trip


@keras.utils.register_keras_serializable(package="tfopt_tests")
def gradient_free_score(weights, gradients):
    return np.abs(weights) + 1.0


CRITERIA = [pruning.Magnitude(), pruning.L2(), pruning.Random(seed=3), pruning.Taylor(decay=0.8),
            pruning.Custom(gradient_free_score, decay=0.5)]


@pytest.mark.parametrize("criterion", CRITERIA, ids=lambda c: type(c).__name__)
def test_config_round_trip(criterion):
    restored = assert_config_round_trip(criterion)
    assert restored == criterion


@pytest.mark.parametrize("name,cls", [("magnitude", pruning.Magnitude), ("l2", pruning.L2),
                                      ("random", pruning.Random), ("taylor", pruning.Taylor)])
def test_get_resolves_names(name, cls):
    assert isinstance(_criteria.get(name), cls)


def test_get_wraps_callables():
    criterion = _criteria.get(gradient_free_score)
    assert isinstance(criterion, pruning.Custom) and criterion.needs_gradients


def test_unknown_criterion_is_explained():
    with pytest.raises(ValueError, match="Unknown pruning criterion 'size'.*'taylor'"):
        _criteria.get("size")


def test_magnitude_and_l2_scores():
    w = np.array([[-3.0, 1.0], [0.5, -2.0]])
    np.testing.assert_array_equal(pruning.Magnitude().scores(w, None, "k"), np.abs(w))
    np.testing.assert_array_equal(pruning.L2().scores(w, None, "k"), w ** 2)


def test_random_is_seeded_per_weight():
    w = np.zeros((5, 5))
    a = pruning.Random(seed=1).scores(w, None, "dense/kernel")
    assert np.array_equal(a, pruning.Random(seed=1).scores(w, None, "dense/kernel"))
    assert not np.array_equal(a, pruning.Random(seed=2).scores(w, None, "dense/kernel"))
    assert not np.array_equal(a, pruning.Random(seed=1).scores(w, None, "other/kernel"))


def test_taylor_uses_gradient_statistic_and_falls_back_to_magnitude():
    w = np.array([1.0, -2.0, 3.0])
    taylor = pruning.Taylor()
    np.testing.assert_array_equal(taylor.scores(w, np.zeros(3), "k"), np.abs(w))
    stat = np.array([0.5, 0.1, 0.2])
    np.testing.assert_array_equal(taylor.scores(w, stat, "k"), stat)
    observed = taylor.observe(tf.constant(w, tf.float32), tf.constant([2.0, 1.0, -1.0]))
    np.testing.assert_allclose(observed.numpy(), [2.0, 2.0, 3.0])


@pytest.mark.parametrize("fn,match", [
    (lambda w: np.abs(w), r"must take two arguments, \(weights, gradients\)"),
    (lambda w, g, h: np.abs(w), r"must take two arguments"),
    (lambda w, g: np.ones(3), r"returned scores of shape \(3,\) for a weight of shape \(3, 4\)"),
    (lambda w, g: w.missing, r"failed on a test weight of shape \(3, 4\).*AttributeError"),
])
def test_custom_criterion_is_checked_when_created_not_inside_fit(fn, match):
    with pytest.raises(ValueError, match=match):
        pruning.Custom(fn)


def test_custom_criterion_must_return_one_score_per_weight_of_every_layer():
    criterion = pruning.Custom(lambda w, g: np.abs(w) if w.shape == (3, 4) else np.ones(3))
    with pytest.raises(ValueError, match="returned scores of shape"):
        criterion.scores(np.zeros((2, 2)), None, "k")


@pytest.mark.parametrize("make,match", [
    (lambda: pruning.Taylor(decay=1.0), r"\[0, 1\)"),
    (lambda: pruning.Random(seed="x"), "integer seed"),
    (lambda: pruning.Custom(3), "needs a callable"),
    (lambda: pruning.Custom(np.abs, decay="0.9"), r"decay=...\) must be a number in \[0, 1\)"),
])
def test_bad_arguments_are_explained(make, match):
    with pytest.raises(ValueError, match=match):
        make()
