import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_optimization as tfmot

from tfopt import pruning
from tests.conftest import assert_config_round_trip

SCHEDULES = [
    pruning.ConstantSparsity(0.8, begin_step=10, end_step=100, frequency=10),
    pruning.PolynomialDecay(0.1, 0.9, begin_step=0, end_step=200, power=2, frequency=20),
    pruning.OneShot(0.5, step=7),
    pruning.Iterative([(0.3, 50), (0.6, 50), (0.9, 10)], begin_step=5),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: type(s).__name__)
def test_config_round_trip(schedule):
    restored = assert_config_round_trip(schedule)
    assert restored == schedule


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: type(s).__name__)
def test_python_and_tensor_evaluation_agree(schedule):
    for step in range(0, 260, 1):
        should, sparsity = schedule.at(step)
        t_should, t_sparsity = schedule(tf.constant(step, tf.int64))
        assert bool(t_should) == should, step
        np.testing.assert_allclose(float(t_sparsity), sparsity, atol=1e-6, err_msg=str(step))


@pytest.mark.parametrize("ours,theirs", [
    (pruning.ConstantSparsity(0.7, 5, 95, 15), tfmot.sparsity.keras.ConstantSparsity(0.7, 5, 95, 15)),
    (pruning.PolynomialDecay(0.2, 0.8, 10, 110, 3, 10),
     tfmot.sparsity.keras.PolynomialDecay(0.2, 0.8, 10, 110, 3, 10)),
])
def test_matches_tfmot(ours, theirs):
    for step in range(0, 130):
        a = ours.at(step)
        b = theirs(tf.constant(step, tf.int64))
        assert a[0] == bool(b[0])
        np.testing.assert_allclose(a[1], float(b[1]), atol=1e-6)


def test_is_a_tfmot_schedule():
    assert isinstance(pruning.PolynomialDecay(0.0, 0.5, 0, 10), tfmot.sparsity.keras.PruningSchedule)


@pytest.mark.parametrize("schedule,final", [
    (pruning.ConstantSparsity(0.7, begin_step=5), (5, 0.7)),
    (pruning.PolynomialDecay(0.0, 0.8, 0, 100, frequency=25), (100, 0.8)),
    (pruning.OneShot(0.4, step=9), (9, 0.4)),
    (pruning.Iterative([(0.3, 10), (0.6, 10)], begin_step=2), (12, 0.6)),
    (tfmot.sparsity.keras.PolynomialDecay(0.0, 0.5, 10, 50, frequency=20), (50, 0.5)),
    (tfmot.sparsity.keras.ConstantSparsity(0.5, 3), (3, 0.5)),
], ids=lambda v: type(v).__name__)
def test_final_update_is_the_step_that_reaches_the_target(schedule, final):
    step, sparsity = pruning._schedules.final_update(schedule)
    assert step == final[0] and sparsity == pytest.approx(final[1])
    assert pruning._schedules.schedule_at(schedule, step) == (True, pytest.approx(final[1]))
