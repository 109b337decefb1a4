"""Pruning schedules for tf-keras: the core schedules as tfmot ``PruningSchedule``s.

A schedule is called with the training step and answers ``(should_prune,
sparsity)``, the same contract as tfmot's ``PruningSchedule``: every schedule here
is a tfmot schedule too, so it also works with ``tfmot.sparsity.keras``, and any
tfmot schedule works with tfopt. The formulas and validation are
`tfopt.core.schedules`'; this module adds the step-tensor ``__call__`` (tfmot's
own for ``ConstantSparsity`` and ``PolynomialDecay``) and tf-keras registration.
"""

import tensorflow as tf
import tf_keras as keras
from tensorflow_model_optimization.python.core.sparsity.keras import (
    pruning_schedule as tfmot_schedule,
)

from tfopt.core import schedules


class PruningSchedule(schedules.PruningSchedule, tfmot_schedule.PruningSchedule):
    __doc__ = schedules.PruningSchedule.__doc__ + """
    For tf-keras, subclasses also implement ``__call__(step)`` for a step tensor
    (the tfmot contract).
    """


@keras.utils.register_keras_serializable(package="tfopt")
class ConstantSparsity(PruningSchedule, schedules.ConstantSparsity,
                       tfmot_schedule.ConstantSparsity):
    __doc__ = schedules.ConstantSparsity.__doc__


@keras.utils.register_keras_serializable(package="tfopt")
class PolynomialDecay(PruningSchedule, schedules.PolynomialDecay, tfmot_schedule.PolynomialDecay):
    __doc__ = schedules.PolynomialDecay.__doc__


@keras.utils.register_keras_serializable(package="tfopt")
class OneShot(PruningSchedule, schedules.OneShot):
    __doc__ = schedules.OneShot.__doc__

    def __call__(self, step):
        step = tf.cast(step, tf.int64)
        sparsity = tf.where(step >= self.step, self.target, 0.0)
        return tf.equal(step, self.step), tf.cast(sparsity, tf.float32)


@keras.utils.register_keras_serializable(package="tfopt")
class Iterative(PruningSchedule, schedules.Iterative):
    __doc__ = schedules.Iterative.__doc__

    def __call__(self, step):
        step = tf.cast(step, tf.int64)
        starts = tf.constant(self._starts, tf.int64)
        sparsities = tf.constant([0.0] + [s for s, _ in self.stages], tf.float32)
        index = tf.reduce_sum(tf.cast(starts <= step, tf.int32))
        return tf.reduce_any(tf.equal(starts, step)), tf.gather(sparsities, index)


def schedule_at(schedule, step):
    """Returns ``(should_prune, sparsity)`` of any tfopt or tfmot schedule as Python values."""
    if isinstance(schedule, schedules.PruningSchedule):
        return schedule.at(step)
    should, sparsity = schedule(tf.constant(step, tf.int64))
    return bool(should), float(sparsity)


def latest_update(schedule, step, steps=1):
    """Sparsity of the last pruning step in [step, step + steps), or None if none prunes."""
    return schedules.latest_update(schedule, step, steps, at=schedule_at)


def final_update(schedule):
    """``(step, sparsity)`` at which a schedule reaches its final sparsity, or None.

    tfopt schedules know it; tfmot's ConstantSparsity and PolynomialDecay are
    read from their attributes; other tfmot schedules give None.
    """
    if isinstance(schedule, schedules.PruningSchedule):
        return schedule.final_update()
    if isinstance(schedule, tfmot_schedule.ConstantSparsity):
        return schedule.begin_step, float(schedule.target_sparsity)
    if isinstance(schedule, tfmot_schedule.PolynomialDecay):
        turns = (schedule.end_step - schedule.begin_step) // schedule.frequency
        last_step = schedule.begin_step + turns * schedule.frequency
        return last_step, schedule_at(schedule, last_step)[1]
    return None


def get(identifier):
    """Resolves a schedule from an instance or a Keras config dict."""
    if isinstance(identifier, tfmot_schedule.PruningSchedule):
        return identifier
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    raise ValueError(
        f"schedule must be a pruning schedule such as ConstantSparsity(0.8) or "
        f"PolynomialDecay(0.0, 0.8, begin_step=0, end_step=1000) (a tfmot "
        f"PruningSchedule works too), got {identifier!r}."
    )


def serialize(schedule):
    """Keras config of a schedule; tfmot schedules keep tfmot's own format."""
    if isinstance(schedule, PruningSchedule):
        return keras.saving.serialize_keras_object(schedule)
    return {"tfmot": True, **schedule.get_config()}


def deserialize(config):
    """Inverse of `serialize`."""
    if config.get("tfmot"):
        cls = getattr(tfmot_schedule, config["class_name"], None)
        if cls is None:
            raise ValueError(f"Unknown tfmot pruning schedule {config['class_name']!r}.")
        return cls.from_config(config["config"])
    return keras.saving.deserialize_keras_object(config)
