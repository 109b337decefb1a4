"""Pruning schedules and criteria for Keras 3: tfopt.core's classes, registered with Keras 3.

The schedules and criteria are framework-free (`tfopt.core`); this module
registers them in Keras 3's serialization registry, resolves the ``schedule=``
and ``criterion=`` arguments of the Keras 3 pruning layers, and gives `Custom`
Keras 3 serialization of its function.
"""

import keras

from tfopt.core import criteria
from tfopt.core import schedules

PruningSchedule = schedules.PruningSchedule
ConstantSparsity = schedules.ConstantSparsity
PolynomialDecay = schedules.PolynomialDecay
OneShot = schedules.OneShot
Iterative = schedules.Iterative

Criterion = criteria.Criterion
Magnitude = criteria.Magnitude
L2 = criteria.L2
Random = criteria.Random
Taylor = criteria.Taylor


class Custom(criteria.Custom):
    __doc__ = criteria.Custom.__doc__

    @staticmethod
    def _serialize_fn(fn):
        return keras.saving.serialize_keras_object(fn)

    @staticmethod
    def _deserialize_fn(config):
        return keras.saving.deserialize_keras_object(config)


_SCHEDULES = (ConstantSparsity, PolynomialDecay, OneShot, Iterative)
for _cls in _SCHEDULES + (Magnitude, L2, Random, Taylor, Custom):
    keras.saving.register_keras_serializable(package="tfopt")(_cls)


def schedule(identifier):
    """Resolves a schedule from an instance or a Keras 3 config dict.

    tfopt.pruning's (tf-keras) schedules are the same schedules with tfmot's
    base added; they are taken as their tfopt.core class.
    """
    if isinstance(identifier, dict):
        identifier = keras.saving.deserialize_keras_object(identifier)
    if isinstance(identifier, PruningSchedule):
        if type(identifier) in _SCHEDULES:
            return identifier
        for cls in _SCHEDULES:
            if isinstance(identifier, cls):
                return cls.from_config(identifier.get_config())
        return identifier  # a user's own subclass of PruningSchedule
    raise ValueError(
        "schedule must be a tfopt pruning schedule such as "
        "tfopt.keras3.pruning.ConstantSparsity(0.8) or PolynomialDecay(0.0, 0.8, "
        f"begin_step=0, end_step=1000), got {identifier!r}"
        + (" (tfmot's schedules are tf-keras only)."
           if type(identifier).__module__.startswith("tensorflow_model_optimization") else "."))


def criterion(identifier):
    """Resolves a criterion from a name, an instance, a callable or a Keras 3 config."""
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    if isinstance(identifier, criteria.Custom) and not isinstance(identifier, Custom):
        return Custom(identifier.fn, identifier.decay)  # tf-keras' Custom
    return criteria.get(identifier, custom=Custom)


def serialize(obj):
    """Keras 3 config of a schedule or criterion (None stays None)."""
    return None if obj is None else keras.saving.serialize_keras_object(obj)


def latest_update(schedule_, step, steps=1):
    """Sparsity of the last pruning step in [step, step + steps), or None if none prunes."""
    return schedules.latest_update(schedule_, step, steps)


def final_update(schedule_):
    """``(step, sparsity)`` at which the schedule reaches its final sparsity, or None."""
    return schedule_.final_update()
