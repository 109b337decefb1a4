"""Checks of the Distiller's models, compile arguments and data, made before any training.

Each error names the argument, what was given, what is allowed and what to do.
Misuse that Keras or TensorFlow would only report from inside the training
graph (labels of the wrong form, inputs of the wrong shape), or not at all (a
loss reading logits as probabilities, one output unit, a student sharing the
teacher's weights), is caught here.
"""

import difflib
import numbers

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfopt import _models
from tfopt.distillation import _outputs

ARGUMENTS = ("teacher", "student", "temperature", "alpha", "teacher_outputs", "student_outputs",
             "hints", "hint_weight")
_MODEL_ARGUMENTS = ("name", "trainable", "dtype", "dynamic", "autocast")
_CROSS_ENTROPY = {keras.losses.sparse_categorical_crossentropy: True,
                  keras.losses.categorical_crossentropy: False,
                  keras.losses.binary_crossentropy: False}


def is_number(value):
    """A real number: Python's or NumPy's, not a bool or a string."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def keyword_arguments(kwargs):
    """Raises TypeError naming keyword arguments neither the Distiller nor Keras knows."""
    unknown = sorted(set(kwargs) - set(_MODEL_ARGUMENTS))
    if not unknown:
        return
    close = [match for name in unknown
             for match in difflib.get_close_matches(name, ARGUMENTS + _MODEL_ARGUMENTS, 1)]
    raise TypeError(
        f"Distiller got unexpected keyword argument(s) {unknown}"
        f"{f' (did you mean {close}?)' if close else ''}. Its arguments are "
        f"{', '.join(ARGUMENTS)}, and Keras model arguments such as name."
    )


def models(teacher, student):
    """Raises ValueError unless `student` can be distilled from `teacher`."""
    _models.validate_tf_keras_model(teacher, "Distiller teacher")
    _models.validate_tf_keras_model(student, "Distiller student")
    if teacher is student:
        raise ValueError("The teacher and the student are the same model; distillation "
                         "trains a separate (usually smaller) student. Build a new one, "
                         "e.g. with keras.models.clone_model.")
    teacher_shape = _outputs.output_shape(teacher, "teacher")
    student_shape = _outputs.output_shape(student, "student")
    if teacher_shape[1:] != student_shape[1:]:
        raise ValueError(
            f"The teacher's output shape {teacher_shape} and the student's "
            f"{student_shape} differ; the student must predict the same classes. "
            "Give its last layer as many units as the teacher's."
        )
    if teacher_shape[-1] == 1:
        raise ValueError(
            f"The teacher and student have one output unit {teacher_shape}: a softmax over one "
            "unit is always 1, so the distillation loss would always be 0. Give a binary "
            "classifier two output units (one logit per class)."
        )
    _same_inputs(teacher, student)
    teacher_weights = {v.ref() for v in teacher.weights}
    shared = [v.name for v in student.trainable_weights if v.ref() in teacher_weights]
    if shared:
        raise ValueError(
            f"The student shares {len(shared)} trainable weight(s) with the teacher (e.g. "
            f"{shared[:3]}), so training it would change the teacher. Build the student from "
            "new layers: distillation.make_student(teacher) or keras.models.clone_model."
        )


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


def _same_inputs(teacher, student):
    expected, given = input_shapes(teacher), input_shapes(student)
    if expected is None or given is None:
        return
    if len(expected) != len(given) or not all(_fits(e, g) for e, g in zip(expected, given)):
        raise ValueError(
            f"The teacher takes inputs of shape {_batched(expected)} and the student "
            f"{_batched(given)}; both are fed the same x. Give the student the teacher's input "
            "shape (distillation.make_student(teacher) does)."
        )


def _fits(expected, given):
    return len(expected) == len(given) and all(
        e is None or g is None or e == g for e, g in zip(expected, given))


def _batched(shapes):
    return [(None,) + s for s in shapes] if len(shapes) > 1 else (None,) + shapes[0]


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
    if from_logits is not None and from_logits != (student_outputs == "logits"):
        reads = "logits" if from_logits else "probabilities"
        given = loss if isinstance(loss, str) else f"{type(loss).__name__}(from_logits={from_logits})"
        raise ValueError(
            f"loss={given!r} reads the student's outputs as {reads}, but "
            f"student_outputs={student_outputs!r}. Leave loss=None (the default matches "
            f"student_outputs) or set from_logits={student_outputs == 'logits'} on the loss."
        )
    sparse = isinstance(resolved, keras.losses.SparseCategoricalCrossentropy) or \
        _CROSS_ENTROPY.get(resolved, False) is True
    return loss, sparse


def data(x, y, inputs, classes, sparse, where):
    """Checks NumPy or tf.data inputs and class labels against the models, before `fit`."""
    if isinstance(x, tf.data.Dataset) and isinstance(x.element_spec, tuple):
        x, y = x.element_spec[0], (x.element_spec[1] if len(x.element_spec) > 1 else None)
    if isinstance(x, (np.ndarray, tf.TensorSpec)) and inputs is not None and len(inputs) == 1:
        shape = tuple(x.shape)
        if len(shape) != len(inputs[0]) + 1 or not _fits(inputs[0], shape[1:]):
            raise ValueError(
                f"{where}: x has shape {shape}, but the teacher and student take inputs of "
                f"shape {(None,) + inputs[0]} (batch first). Reshape x to match.")
    if not sparse or not isinstance(y, (np.ndarray, list, tf.TensorSpec)):
        return
    if isinstance(y, tf.TensorSpec):
        if y.shape.rank is not None:
            labels(y.shape.as_list(), classes, where)
        return
    y = np.asarray(y)
    labels(y.shape, classes, where)
    if y.size and np.issubdtype(y.dtype, np.number):
        fractional = y[np.mod(y, 1) != 0]
        if fractional.size or y.min() < 0 or y.max() >= classes:
            found = (f"non-integer values such as {fractional.flat[0]}" if fractional.size
                     else f"values from {y.min()} to {y.max()}")
            raise ValueError(
                f"{where}: y must hold integer class indices in [0, {classes}) for the sparse "
                f"categorical cross-entropy loss; got {found}. Map the labels to "
                "0..classes-1.")


def labels(shape, classes, where):
    """Refuses label shapes other than (batch,) or (batch, 1) for class-index losses."""
    shape = tuple(shape)
    if len(shape) <= 1 or (len(shape) == 2 and shape[-1] in (1, None)):
        return
    one_hot = len(shape) == 2 and shape[-1] == classes
    raise ValueError(
        f"{where}: y has shape {shape}, but the hard-label loss (sparse categorical "
        f"cross-entropy, the default) takes class indices of shape (batch,). "
        + ("These look one-hot: pass np.argmax(y, axis=-1), or compile(loss=keras.losses."
           "CategoricalCrossentropy(from_logits=...)) to keep them." if one_hot
           else "Pass one class index per example.")
    )
