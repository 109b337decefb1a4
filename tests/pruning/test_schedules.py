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


def test_polynomial_decay_reaches_final():
    s = pruning.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=100, frequency=50)
    assert s.at(0) == (True, 0.0)
    assert s.at(50)[0] and 0.6 < s.at(50)[1] < 0.8
    assert s.at(100) == (True, pytest.approx(0.8))
    assert s.at(150) == (False, pytest.approx(0.8))


def test_one_shot_prunes_once():
    s = pruning.OneShot(0.6, step=3)
    events = [step for step in range(20) if s.at(step)[0]]
    assert events == [3]
    assert s.at(2)[1] == 0.0 and s.at(10)[1] == 0.6


def test_iterative_holds_each_stage():
    s = pruning.Iterative([(0.5, 10), (0.7, 10), (0.8, 5)], begin_step=2)
    events = [(step, s.at(step)[1]) for step in range(40) if s.at(step)[0]]
    assert events == [(2, 0.5), (12, 0.7), (22, 0.8)]
    assert s.at(11) == (False, 0.5)
    assert s.at(1) == (False, 0.0)
    assert s.at(39) == (False, 0.8)


@pytest.mark.parametrize("make,match", [
    (lambda: pruning.ConstantSparsity(1.0), r"target_sparsity must be a number in \[0, 1\), got 1.0"),
    (lambda: pruning.ConstantSparsity(-0.1), r"\[0, 1\)"),
    (lambda: pruning.PolynomialDecay(0.0, 0.8, begin_step=100, end_step=50),
     r"end_step \(50\) is before begin_step \(100\)"),
    (lambda: pruning.PolynomialDecay(0.0, 0.8, 0, -1), "end_step=-1"),
    (lambda: pruning.PolynomialDecay(0.0, 0.8, 5, 5), "OneShot"),
    (lambda: pruning.ConstantSparsity(0.5, frequency=0), "frequency must be a positive"),
    (lambda: pruning.ConstantSparsity(0.5, begin_step=-2), "begin_step must be >= 0"),
    (lambda: pruning.OneShot(1.5), r"target must be a number in \[0, 1\)"),
    (lambda: pruning.Iterative([(0.8, 10), (0.5, 10)]), "must not decrease"),
    (lambda: pruning.PolynomialDecay(0.8, 0.2, 0, 10), r"final_sparsity \(0.2\) is below "
                                                        r"initial_sparsity \(0.8\)"),
    (lambda: pruning.PolynomialDecay(0.0, 0.5, 0, 10, power=0), "power must be a positive"),
    (lambda: pruning.ConstantSparsity(0.5, begin_step="10"), "begin_step must be an integer"),
    (lambda: pruning.ConstantSparsity("0.5"), r"target_sparsity must be a number"),
    (lambda: pruning.OneShot(0.5, step="3"), r"^step must be an integer, got '3'"),
    (lambda: pruning.OneShot(0.5, step=-1), r"^step must be >= 0"),
    (lambda: pruning.Iterative([(0.5, 2.7)]), r"\(sparsity, hold_steps\) pairs"),
    (lambda: pruning.Iterative([(0.5, 0)]), "hold_steps must be >= 1"),
    (lambda: pruning.Iterative([]), "stages is empty"),
    (lambda: pruning.Iterative([0.5, 0.8]), r"\(sparsity, hold_steps\) pairs"),
])
def test_bad_arguments_are_explained(make, match):
    with pytest.raises(ValueError, match=match):
        make()


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


def test_polynomial_decay_warns_when_its_end_step_is_never_a_pruning_step(caplog):
    schedule = pruning.PolynomialDecay(0.0, 0.8, 0, 938, frequency=100)
    assert "the last pruning step is 900, at sparsity 0.7999" in caplog.text
    assert schedule.final_update()[0] == 900
    caplog.clear()
    pruning.PolynomialDecay(0.0, 0.8, 0, 900, frequency=100)
    assert not caplog.text


def test_latest_update_in_a_window_of_steps():
    schedule = pruning.PolynomialDecay(0.0, 0.8, 0, 12, frequency=3)
    assert pruning._schedules.latest_update(schedule, 0, 1) == 0.0
    assert pruning._schedules.latest_update(schedule, 1, 2) is None  # steps 1, 2
    assert pruning._schedules.latest_update(schedule, 4, 4) == schedule.at(6)[1]  # 4..7
