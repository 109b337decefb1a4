"""Pruning schedules: when to prune, and to what sparsity, in plain Python.

``at(step)`` answers ``(should_prune, sparsity)`` for an integer step, and
``final_update()`` names the pruning step that reaches the final sparsity.
``ConstantSparsity`` and ``PolynomialDecay`` take the same arguments as tfmot's
and compute the same formulas; ``OneShot`` and ``Iterative`` are tfopt's.

These classes carry no Keras: tf-keras' `tfopt.pruning` subclasses them into
tfmot ``PruningSchedule``s (called with a step tensor), and each Keras path
registers its classes for serialization.
"""

import bisect

import numpy as np
from absl import logging

from tfopt._config import ConfigEquality


def _validate_sparsity(value, name):
    if not isinstance(value, (int, float, np.floating, np.integer)) or not 0.0 <= value < 1.0:
        raise ValueError(
            f"{name} must be a number in [0, 1), got {value!r}. Sparsity is the "
            "fraction of weights set to zero: 0.8 prunes 80% of them; 1.0 would "
            "remove every weight."
        )


def _is_integer(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _validate_step(value, name):
    if not _is_integer(value):
        raise ValueError(f"{name} must be an integer, got {value!r}.")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}.")


def _validate_steps(begin_step, end_step, frequency, allow_endless):
    _validate_step(begin_step, "begin_step")
    for name, value in (("frequency", frequency), ("end_step", end_step)):
        if not _is_integer(value):
            raise ValueError(f"{name} must be an integer, got {value!r}.")
    if frequency <= 0:
        raise ValueError(
            f"frequency must be a positive number of steps, got {frequency}."
        )
    if end_step == -1:
        if not allow_endless:
            raise ValueError(
                "end_step=-1 (prune forever) is not allowed here: this schedule "
                "needs an end_step to reach its final sparsity. Pass the step at "
                "which pruning should reach final_sparsity."
            )
        return
    if end_step < begin_step:
        raise ValueError(
            f"end_step ({end_step}) is before begin_step ({begin_step}). Pass an "
            "end_step >= begin_step"
            + (", or -1 to keep pruning until training ends." if allow_endless else ".")
        )


def _in_pruning_turn(step, begin_step, end_step, frequency):
    if step < begin_step or (end_step >= 0 and step > end_step):
        return False
    return (step - begin_step) % frequency == 0


class PruningSchedule(ConfigEquality):
    """Base class of tfopt schedules.

    Subclasses implement ``at(step)``, answering ``(should_prune, sparsity)`` as
    Python values for an integer step. tfopt's callbacks use ``at``, which costs
    no framework ops per training step.
    """

    def at(self, step):
        raise NotImplementedError

    def final_update(self):
        """``(step, sparsity)`` of the pruning step that reaches the final sparsity.

        Training that stops before this step ends below the schedule's target;
        `UpdatePruningStep` warns when that happens.
        """
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class ConstantSparsity(PruningSchedule):
    """Prunes to one sparsity every `frequency` steps in [begin_step, end_step].

    Args:
      target_sparsity: fraction of weights to zero, in [0, 1).
      begin_step: first step at which to prune. Defaults to 0.
      end_step: last step at which to prune; -1 prunes until training ends.
        Defaults to -1.
      frequency: prune every this many steps. Defaults to 100.

    Example:
      >>> s = ConstantSparsity(0.8, begin_step=0, frequency=10)
      >>> s.at(10)
      (True, 0.8)
    """

    def __init__(self, target_sparsity, begin_step=0, end_step=-1, frequency=100):
        _validate_sparsity(target_sparsity, "target_sparsity")
        _validate_steps(begin_step, end_step, frequency, allow_endless=True)
        self.target_sparsity = float(target_sparsity)
        self.begin_step, self.end_step = int(begin_step), int(end_step)
        self.frequency = int(frequency)

    def at(self, step):
        should = _in_pruning_turn(step, self.begin_step, self.end_step, self.frequency)
        return should, self.target_sparsity

    def final_update(self):
        return self.begin_step, self.target_sparsity

    def get_config(self):
        return {
            "target_sparsity": self.target_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }


class PolynomialDecay(PruningSchedule):
    """Raises sparsity from initial to final along a polynomial (Zhu & Gupta, 2017).

    ``sparsity(step) = final + (initial - final) * (1 - p) ** power`` with ``p`` the
    fraction of [begin_step, end_step] done; pruning happens every `frequency`
    steps within that range. Same arguments and formula as tfmot's.

    Args:
      initial_sparsity: sparsity at begin_step, in [0, 1).
      final_sparsity: sparsity reached at end_step, in [0, 1).
      begin_step: step at which pruning starts.
      end_step: step at which final_sparsity is reached.
      power: exponent of the decay. Defaults to 3.
      frequency: prune every this many steps. Defaults to 100.

    Example:
      >>> s = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=1000)
      >>> s.at(1000)
      (True, 0.8)
    """

    def __init__(self, initial_sparsity, final_sparsity, begin_step, end_step,
                 power=3, frequency=100):
        _validate_sparsity(initial_sparsity, "initial_sparsity")
        _validate_sparsity(final_sparsity, "final_sparsity")
        _validate_steps(begin_step, end_step, frequency, allow_endless=False)
        if end_step == begin_step:
            raise ValueError(
                f"end_step equals begin_step ({begin_step}): a decay needs at least "
                "one step. Use OneShot(target, step) to prune once."
            )
        if final_sparsity < initial_sparsity:
            raise ValueError(
                f"final_sparsity ({final_sparsity}) is below initial_sparsity "
                f"({initial_sparsity}): pruned weights are never restored, so the sparsity "
                f"would stay at {initial_sparsity}. Pass final_sparsity >= initial_sparsity."
            )
        if isinstance(power, bool) or not isinstance(power, (int, float, np.number)) \
                or power <= 0:
            raise ValueError(f"power must be a positive number, got {power!r}.")
        self.initial_sparsity, self.final_sparsity = float(initial_sparsity), float(final_sparsity)
        self.begin_step, self.end_step = int(begin_step), int(end_step)
        self.power, self.frequency = power, int(frequency)
        self._warn_if_final_is_skipped()

    def _warn_if_final_is_skipped(self):
        last_step, sparsity = self.final_update()
        if last_step != self.end_step and sparsity < self.final_sparsity - 1e-6:
            logging.warning(
                "PolynomialDecay(end_step=%d, frequency=%d): pruning happens every %d steps "
                "from begin_step=%d, so the last pruning step is %d, at sparsity %.4f; "
                "final_sparsity %.4f is never applied (tfmot's schedule does the same). Make "
                "end_step - begin_step a multiple of frequency to reach it.",
                self.end_step, self.frequency, self.frequency, self.begin_step, last_step,
                sparsity, self.final_sparsity)

    def at(self, step):
        should = _in_pruning_turn(step, self.begin_step, self.end_step, self.frequency)
        p = min(1.0, max(0.0, (step - self.begin_step) / (self.end_step - self.begin_step)))
        sparsity = self.final_sparsity + (
            self.initial_sparsity - self.final_sparsity) * (1.0 - p) ** self.power
        return should, float(sparsity)

    def final_update(self):
        turns = (self.end_step - self.begin_step) // self.frequency
        last_step = self.begin_step + turns * self.frequency
        return last_step, self.at(last_step)[1]

    def get_config(self):
        return {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self.final_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "power": self.power,
            "frequency": self.frequency,
        }


class OneShot(PruningSchedule):
    """Prunes once, to `target`, at `step`, then keeps the masks fixed.

    Args:
      target: fraction of weights to zero, in [0, 1).
      step: the training step at which to prune. Defaults to 0 (before the
        first update).

    Example:
      >>> OneShot(0.5, step=100).at(100)
      (True, 0.5)
    """

    def __init__(self, target, step=0):
        _validate_sparsity(target, "target")
        _validate_step(step, "step")
        self.target = float(target)
        self.step = int(step)

    def at(self, step):
        return step == self.step, (self.target if step >= self.step else 0.0)

    def final_update(self):
        return self.step, self.target

    def get_config(self):
        return {"target": self.target, "step": self.step}


class Iterative(PruningSchedule):
    """Prune, retrain, prune again: each stage prunes once and holds its sparsity.

    Stage ``i`` prunes to ``stages[i][0]`` at its first step, then trains with
    those masks for ``stages[i][1]`` steps before the next stage prunes further.

    Args:
      stages: a list of ``(sparsity, hold_steps)`` pairs; sparsities must not
        decrease.
      begin_step: the step of the first stage. Defaults to 0.

    Example:
      >>> s = Iterative([(0.5, 100), (0.8, 100)])
      >>> s.at(0), s.at(50), s.at(100)
      ((True, 0.5), (False, 0.5), (True, 0.8))
    """

    def __init__(self, stages, begin_step=0):
        self.stages = self._validate_stages(stages)
        _validate_step(begin_step, "begin_step")
        self.begin_step = int(begin_step)
        self._starts = [self.begin_step]
        for _, hold in self.stages[:-1]:
            self._starts.append(self._starts[-1] + hold)

    @staticmethod
    def _validate_stages(stages):
        try:
            stages = [(float(s), h) for s, h in stages]
            if not all(_is_integer(h) for _, h in stages):
                raise TypeError("hold_steps must be integers")
            stages = [(s, int(h)) for s, h in stages]
        except (TypeError, ValueError):
            raise ValueError(
                f"stages must be a list of (sparsity, hold_steps) pairs, got {stages!r}. "
                "Example: Iterative([(0.5, 1000), (0.8, 1000)])."
            ) from None
        if not stages:
            raise ValueError("stages is empty; give at least one (sparsity, hold_steps) pair.")
        previous = 0.0
        for i, (sparsity, hold) in enumerate(stages):
            _validate_sparsity(sparsity, f"stages[{i}] sparsity")
            if hold <= 0:
                raise ValueError(f"stages[{i}] holds for {hold} steps; hold_steps must be >= 1.")
            if sparsity < previous:
                raise ValueError(
                    f"stages[{i}] lowers sparsity from {previous} to {sparsity}; "
                    "pruned weights are not restored, so stages must not decrease."
                )
            previous = sparsity
        return stages

    def at(self, step):
        index = bisect.bisect_right(self._starts, step) - 1
        if index < 0:
            return False, 0.0
        return step == self._starts[index], self.stages[index][0]

    def final_update(self):
        return self._starts[-1], self.stages[-1][0]

    def get_config(self):
        return {"stages": [list(stage) for stage in self.stages], "begin_step": self.begin_step}


def schedule_at(schedule, step):
    """``(should_prune, sparsity)`` of a tfopt schedule at an integer step."""
    return schedule.at(step)


def latest_update(schedule, step, steps=1, at=schedule_at):
    """Sparsity of the last pruning step in [step, step + steps), or None if none prunes.

    Args:
      schedule: the schedule.
      step: the first step of the window.
      steps: the window's length. Defaults to 1.
      at: the function evaluating `schedule` at a step (a Keras path passes
        one that also reads its framework's schedules). Defaults to `schedule_at`.
    """
    for candidate in range(step + steps - 1, step - 1, -1):
        should_prune, sparsity = at(schedule, candidate)
        if should_prune:
            return sparsity
    return None
