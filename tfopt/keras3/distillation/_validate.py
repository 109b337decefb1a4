"""The Keras 3 Distiller's checks of its models, compile arguments and data.

The same checks, in the same words, as tf-keras' `tfopt.distillation`: the
sentences live in `tfopt.core.distillation`; this module reads what they need
from Keras 3 models and losses. They run before any training, where Keras would
fail inside the training graph ("Dimensions must be equal") or not at all (a
softmax teacher read as logits, a loss reading logits as probabilities).
"""

import keras
import numpy as np

from tfopt.core import distillation as _core
from tfopt.keras3 import _models

MAKE_STUDENT = "tfopt.keras3.distillation.make_student"
_CROSS_ENTROPY = {"sparse_categorical_crossentropy": True, "categorical_crossentropy": False,
                  "binary_crossentropy": False}


def models(teacher, student):
    """Raises ValueError unless `student` can be distilled from `teacher`."""
    _models.validate_keras3_model(teacher, "Distiller teacher")
    _models.validate_keras3_model(student, "Distiller student")
    _core.same_model(teacher, student)
    _core.output_shapes(output_shape(teacher, "teacher"), output_shape(student, "student"))
    _core.input_shapes(input_shapes(teacher), input_shapes(student), MAKE_STUDENT)
    teacher_weights = {id(v) for v in teacher.weights}
    _core.shared_weights(
        [v.path for v in student.trainable_weights if id(v) in teacher_weights], MAKE_STUDENT)


def output_shape(model, role):
    """The model's single output shape with batch dimension None, or a ValueError."""
    shape = _known_output_shape(model) if model.built else None
    if shape is None:
        raise ValueError(
            f"The {role} {model.name!r} ({type(model).__name__}) has no single known output "
            f"shape{'' if model.built else ' (it is not built)'}. Give the Distiller a "
            "Sequential or Functional model with one output, or call a subclassed model once "
            "on a batch so its output shape is known.")
    return (None,) + tuple(shape[1:])


def _known_output_shape(model):
    outputs = getattr(model, "outputs", None)
    if outputs is not None:
        return tuple(outputs[0].shape) if len(outputs) == 1 else None
    inputs = input_shapes(model)
    if inputs is None or len(inputs) != 1:
        return None
    try:  # a subclassed model called once: trace it on its input shape
        spec = model.compute_output_spec(keras.KerasTensor((None,) + inputs[0]))
    except Exception:  # noqa: BLE001  (any failure means: shape unknown)
        return None
    return tuple(spec.shape) if isinstance(spec, keras.KerasTensor) else None


def input_shapes(model):
    """[shape without batch] per input of a model whose inputs are known, else None."""
    inputs = getattr(model, "inputs", None)
    if inputs:
        return [tuple(t.shape[1:]) for t in inputs]
    built = getattr(model, "_build_shapes_dict", None)  # a subclassed model called once
    if built and len(built) == 1:
        shape = next(iter(built.values()))
        if isinstance(shape, tuple):
            return [tuple(shape[1:])]
    return None


def kind_matches_model(model, kind, name, role):
    """Raises ValueError when `model`'s last layer contradicts `kind`."""
    _core.kind_matches_activation(final_activation(model), kind, name, role, model.name)


def final_activation(model):
    """(activation, layer name, class name, has activation) of the output layer, or None.

    Looks through nested models; None when the last operation is not one whose
    activation is known (a subclassed model, a Lambda, a custom layer).
    """
    operation = _output_operation(model)
    while operation is not None and _models.is_graph_model(operation):
        operation = _output_operation(operation)
    if operation is None:
        return None
    kind = type(operation).__name__
    if kind == "Softmax":  # the layer, or keras.ops.softmax in a Functional model
        return "softmax", operation.name, kind, False
    if not isinstance(operation, keras.layers.Layer):
        return None
    config = operation.get_config()
    activation = _core.activation_name(config.get("activation"))
    if activation is None:
        return None
    return activation, operation.name, kind, "activation" in config


def _output_operation(model):
    outputs = getattr(model, "outputs", None)
    if not _models.is_graph_model(model) or not outputs or len(outputs) != 1:
        return None
    return outputs[0]._keras_history.operation


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
    """(loss function, whether it takes class indices); refuses one reading outputs wrongly."""
    resolved = loss
    if isinstance(loss, str):
        try:
            resolved = keras.losses.get(loss)
        except ValueError:
            resolved = None
        if resolved is None:
            raise ValueError(f"loss={loss!r} is not a Keras loss name; use e.g. "
                             "'sparse_categorical_crossentropy', a keras.losses.Loss, or None "
                             "for the default.")
    name = getattr(resolved, "__name__", None)
    if isinstance(resolved, keras.losses.Loss):
        from_logits = resolved.get_config().get("from_logits")
    else:
        from_logits = False if name in _CROSS_ENTROPY else None
    given = loss if isinstance(loss, str) else f"{type(loss).__name__}(from_logits={from_logits})"
    _core.loss_reads_outputs(given, from_logits, student_outputs)
    sparse = isinstance(resolved, keras.losses.SparseCategoricalCrossentropy) or \
        _CROSS_ENTROPY.get(name, False) is True
    return resolved, sparse


def data(x, y, inputs, classes, sparse, where):
    """Checks NumPy inputs and class labels against the models, before `fit`."""
    if isinstance(x, np.ndarray):
        _core.x_shape(x.shape, inputs, where)
    if sparse and isinstance(y, (np.ndarray, list)):
        _core.label_values(y, classes, where)
