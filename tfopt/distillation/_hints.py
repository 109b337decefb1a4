"""Feature (hint) distillation: match a student layer's activations to a teacher layer's.

FitNets (Romero et al., 2015): besides the outputs, the student learns to
reproduce the teacher's intermediate activations, through a learned linear
projection when the two layers have different widths.
"""

import tensorflow as tf
import tf_keras as keras

from tfopt import _clone
from tfopt.core import distillation as _core


validate_hints = _core.hints
validate_hint_weight = _core.hint_weight


def taps(model, names, role):
    """A model sharing `model`'s layers that returns [output, *named layers' outputs]."""
    if not _clone.is_graph_model(model):
        raise ValueError(
            f"Hint distillation reads the activations of named layers, which needs a Sequential "
            f"or Functional {role}; {model.name!r} is a subclassed model "
            f"({type(model).__name__}). Distill outputs only (no hints), or rebuild the {role} "
            "with the Functional API."
        )
    features = [_layer_output(model, name, role) for name in names]
    return keras.Model(model.inputs, [model.output, *features], name=f"{model.name}_hints")


def _layer_output(model, name, role):
    try:
        layer = model.get_layer(name)
    except ValueError:
        available = [layer.name for layer in model.layers]
        raise ValueError(f"The {role} {model.name!r} has no layer {name!r}; its layers are "
                         f"{available}. Name a top-level layer of the {role}.") from None
    try:
        return layer.output
    except AttributeError:  # a layer called at several places has no single output
        raise ValueError(f"The {role}'s layer {name!r} is called more than once in "
                         f"{model.name!r}, so its activation is ambiguous; pair a layer that "
                         "is used once.") from None


def projection(teacher_shape, student_shape, pair, name):
    """The layer mapping the student's activation to the teacher's width, or None if equal.

    A Dense layer on the last (channel) axis: for convolutional features this
    is a 1x1 convolution. It belongs to the Distiller, not to the student.
    """
    if not _core.hint_shapes(teacher_shape, student_shape, pair):
        return None
    layer = keras.layers.Dense(teacher_shape[-1], name=name)
    layer.build(student_shape)
    return layer


def hint_loss(teacher_features, student_features, projections):
    """Sum over the pairs of the mean squared error after projection."""
    losses = []
    for teacher, student, project in zip(teacher_features, student_features, projections):
        if project is not None:
            student = project(student)
        losses.append(tf.reduce_mean(tf.math.squared_difference(
            tf.cast(student, tf.float32), tf.cast(teacher, tf.float32))))
    return tf.add_n(losses)
