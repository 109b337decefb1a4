"""Checks of the Distiller's models, compile arguments and data, made before any training.

Each error names the argument, what was given, what is allowed and what to do.
Misuse that Keras or TensorFlow would only report from inside the training
graph (labels of the wrong form, inputs of the wrong shape), or not at all (a
loss reading logits as probabilities, one output unit, a student sharing the
teacher's weights), is caught here.
"""

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfopt import _models
from tfopt.core import distillation as _core
from tfopt.distillation import _outputs

_MAKE_STUDENT = "distillation.make_student"
_CROSS_ENTROPY = {keras.losses.sparse_categorical_crossentropy: True,
                  keras.losses.categorical_crossentropy: False,
                  keras.losses.binary_crossentropy: False}


is_number = _core.is_number
keyword_arguments = _core.keyword_arguments
labels = _core.labels


def models(teacher, student):
    """Raises ValueError unless `student` can be distilled from `teacher`."""
    _models.validate_tf_keras_model(teacher, "Distiller teacher")
    _models.validate_tf_keras_model(student, "Distiller student")
    _core.same_model(teacher, student)
    _core.output_shapes(_outputs.output_shape(teacher, "teacher"),
                        _outputs.output_shape(student, "student"))
    _core.input_shapes(input_shapes(teacher), input_shapes(student), _MAKE_STUDENT)
    teacher_weights = {v.ref() for v in teacher.weights}
    _core.shared_weights(
        [v.name for v in student.trainable_weights if v.ref() in teacher_weights], _MAKE_STUDENT)


def input_shapes(model):
    """[shape without batch] per input of a model whose inputs are known, else None."""
    try:
        shapes = model.input_shape
    except AttributeError:  # a subclassed model without a recorded call
        return None
    shapes = shapes if isinstance(shapes, list) else [shapes]
    if not all(isinstance(s, tuple) for s in shapes):
        return None
    return [tuple(s[1:]) for s in shapes]


def optimizer(value):
    if value is None:
        raise ValueError("Distiller.compile needs an optimizer for the student, got None; pass "
                         "e.g. optimizer='adam' or keras.optimizers.Adam(1e-3).")
    if isinstance(value, str):
        try:
            keras.optimizers.get(value)
        except ValueError:
            raise ValueError(f"optimizer={value!r} is not a Keras optimizer name; use e.g. "
                             "'adam', 'sgd' or 'rmsprop', or an optimizer instance.") from None


def hard_loss(loss, student_outputs):
    """Resolves the compiled loss; refuses one that reads the student's outputs wrongly.

    Returns:
      (loss, whether it takes integer class labels).
    """
    resolved = loss
    if isinstance(loss, str):
        try:
            resolved = keras.losses.get(loss)
        except ValueError:
            raise ValueError(f"loss={loss!r} is not a Keras loss name; use e.g. "
                             "'sparse_categorical_crossentropy', a keras.losses.Loss, or None "
                             "for the default.") from None
    from_logits = resolved.get_config().get("from_logits") if isinstance(
        resolved, keras.losses.Loss) else (False if resolved in _CROSS_ENTROPY else None)
    given = loss if isinstance(loss, str) else f"{type(loss).__name__}(from_logits={from_logits})"
    _core.loss_reads_outputs(given, from_logits, student_outputs)
    sparse = isinstance(resolved, keras.losses.SparseCategoricalCrossentropy) or \
        _CROSS_ENTROPY.get(resolved, False) is True
    return loss, sparse


def data(x, y, inputs, classes, sparse, where):
    """Checks NumPy or tf.data inputs and class labels against the models, before `fit`."""
    if isinstance(x, tf.data.Dataset) and isinstance(x.element_spec, tuple):
        x, y = x.element_spec[0], (x.element_spec[1] if len(x.element_spec) > 1 else None)
    if isinstance(x, (np.ndarray, tf.TensorSpec)):
        _core.x_shape(x.shape, inputs, where)
    if not sparse or not isinstance(y, (np.ndarray, list, tf.TensorSpec)):
        return
    if isinstance(y, tf.TensorSpec):
        if y.shape.rank is not None:
            labels(y.shape.as_list(), classes, where)
        return
    _core.label_values(y, classes, where)
