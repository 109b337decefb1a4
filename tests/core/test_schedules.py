import pytest

from tfopt.core import schedules


def test_polynomial_decay_reaches_final():
    s = schedules.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=100, frequency=50)
    assert s.at(0) == (True, 0.0)
    assert s.at(50)[0] and 0.6 < s.at(50)[1] < 0.8
    assert s.at(100) == (True, pytest.approx(0.8))
    assert s.at(150) == (False, pytest.approx(0.8))


def test_one_shot_prunes_once():
    s = schedules.OneShot(0.6, step=3)
    events = [step for step in range(20) if s.at(step)[0]]
    assert events == [3]
    assert s.at(2)[1] == 0.0 and s.at(10)[1] == 0.6


def test_iterative_holds_each_stage():
    s = schedules.Iterative([(0.5, 10), (0.7, 10), (0.8, 5)], begin_step=2)
    events = [(step, s.at(step)[1]) for step in range(40) if s.at(step)[0]]
    assert events == [(2, 0.5), (12, 0.7), (22, 0.8)]
    assert s.at(11) == (False, 0.5)
    assert s.at(1) == (False, 0.0)
    assert s.at(39) == (False, 0.8)


@pytest.mark.parametrize("make,match", [
    (lambda: schedules.ConstantSparsity(1.0), r"target_sparsity must be a number in \[0, 1\), got 1.0"),
    (lambda: schedules.ConstantSparsity(-0.1), r"\[0, 1\)"),
    (lambda: schedules.PolynomialDecay(0.0, 0.8, begin_step=100, end_step=50),
     r"end_step \(50\) is before begin_step \(100\)"),
    (lambda: schedules.PolynomialDecay(0.0, 0.8, 0, -1), "end_step=-1"),
    (lambda: schedules.PolynomialDecay(0.0, 0.8, 5, 5), "OneShot"),
    (lambda: schedules.ConstantSparsity(0.5, frequency=0), "frequency must be a positive"),
    (lambda: schedules.ConstantSparsity(0.5, begin_step=-2), "begin_step must be >= 0"),
    (lambda: schedules.OneShot(1.5), r"target must be a number in \[0, 1\)"),
    (lambda: schedules.Iterative([(0.8, 10), (0.5, 10)]), "must not decrease"),
    (lambda: schedules.PolynomialDecay(0.8, 0.2, 0, 10), r"final_sparsity \(0.2\) is below "
                                                        r"initial_sparsity \(0.8\)"),
    (lambda: schedules.PolynomialDecay(0.0, 0.5, 0, 10, power=0), "power must be a positive"),
    (lambda: schedules.ConstantSparsity(0.5, begin_step="10"), "begin_step must be an integer"),
    (lambda: schedules.ConstantSparsity("0.5"), r"target_sparsity must be a number"),
    (lambda: schedules.OneShot(0.5, step="3"), r"^step must be an integer, got '3'"),
    (lambda: schedules.OneShot(0.5, step=-1), r"^step must be >= 0"),
    (lambda: schedules.Iterative([(0.5, 2.7)]), r"\(sparsity, hold_steps\) pairs"),
    (lambda: schedules.Iterative([(0.5, 0)]), "hold_steps must be >= 1"),
    (lambda: schedules.Iterative([]), "stages is empty"),
    (lambda: schedules.Iterative([0.5, 0.8]), r"\(sparsity, hold_steps\) pairs"),
])
def test_bad_arguments_are_explained(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_polynomial_decay_warns_when_its_end_step_is_never_a_pruning_step(caplog):
    schedule = schedules.PolynomialDecay(0.0, 0.8, 0, 938, frequency=100)
    assert "the last pruning step is 900, at sparsity 0.7999" in caplog.text
    assert schedule.final_update()[0] == 900
    caplog.clear()
    schedules.PolynomialDecay(0.0, 0.8, 0, 900, frequency=100)
    assert not caplog.text


def test_latest_update_in_a_window_of_steps():
    schedule = schedules.PolynomialDecay(0.0, 0.8, 0, 12, frequency=3)
    assert schedules.latest_update(schedule, 0, 1) == 0.0
    assert schedules.latest_update(schedule, 1, 2) is None  # steps 1, 2
    assert schedules.latest_update(schedule, 4, 4) == schedule.at(6)[1]  # 4..7


@pytest.mark.parametrize("schedule", [
    schedules.ConstantSparsity(0.8, begin_step=10, end_step=100, frequency=10),
    schedules.PolynomialDecay(0.1, 0.9, begin_step=0, end_step=200, power=2, frequency=20),
    schedules.OneShot(0.5, step=7),
    schedules.Iterative([(0.3, 50), (0.6, 50), (0.9, 10)], begin_step=5),
], ids=lambda s: type(s).__name__)
def test_config_rebuilds_an_equal_schedule(schedule):
    rebuilt = type(schedule).from_config(schedule.get_config())
    assert rebuilt == schedule and rebuilt.at(60) == schedule.at(60)
