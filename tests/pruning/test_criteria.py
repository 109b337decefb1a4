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


def test_get_wraps_callables():
    criterion = _criteria.get(gradient_free_score)
    assert isinstance(criterion, pruning.Custom) and criterion.needs_gradients


def test_taylor_observes_tf_tensors():
    observed = pruning.Taylor().observe(tf.constant([1.0, -2.0, 3.0]),
                                        tf.constant([2.0, 1.0, -1.0]))
    np.testing.assert_allclose(observed.numpy(), [2.0, 2.0, 3.0])
