"""What the teacher's and student's outputs are: their shape, and logits or probabilities.

The distillation loss softens the teacher's and student's distributions at a
temperature, which needs logits. Probabilities are turned back into logits
(up to a constant), but only if the Distiller is told which it gets: a softmax
output read as logits is softened a second time and distilled from the wrong
distribution without any error. So where the last layer says what the outputs
are, a contradicting `teacher_outputs` / `student_outputs` is refused.
"""

import tensorflow as tf
import tf_keras as keras

from tfopt import _clone
from tfopt.core import distillation as _core

KINDS = _core.KINDS
validate_kind = _core.kind


def validate_kind_matches_model(model, kind, name, role):
    """Raises ValueError when `model`'s last layer contradicts `kind`."""
    found = final_activation(model)
    if found is not None:
        activation, layer = found
        found = (activation, layer.name, type(layer).__name__,
                 "activation" in layer.get_config())
    _core.kind_matches_activation(found, kind, name, role, model.name)


def final_activation(model):
    """(activation name, layer) of the layer producing `model`'s output, or None if unknown.

    Looks through nested models and wrappers (pruning, quantization,
    TimeDistributed). The name is "softmax", "linear" or another Keras
    activation name; None when the last layer is not one whose activation is
    known (a subclassed model, a Lambda, a custom layer).
    """
    layer = _output_layer(model)
    while layer is not None and _clone.is_graph_model(layer):
        layer = _output_layer(layer)
    while isinstance(getattr(layer, "layer", None), keras.layers.Layer):
        layer = layer.layer  # PruneWrapper, QuantizeWrapper, TimeDistributed
    if layer is None:
        return None
    if isinstance(layer, keras.layers.Softmax):
        return "softmax", layer
    config = layer.get_config()
    if config.get("function") in ("nn.softmax", "math.softmax"):  # tf.nn.softmax in a model
        return "softmax", layer
    activation = _core.activation_name(config.get("activation"))
    return (activation, layer) if activation is not None else None


def _output_layer(model):
    if not _clone.is_graph_model(model) or len(model.outputs) != 1:
        return None
    return model.outputs[0]._keras_history.layer


def output_shape(model, role):
    """The model's single output shape with batch dimension None, or a ValueError."""
    shape = _known_output_shape(model) if model.built else None
    if shape is None:
        raise ValueError(
            f"The {role} {model.name!r} ({type(model).__name__}) has no single known output "
            f"shape{'' if model.built else ' (it is not built)'}. Give the Distiller a "
            "Sequential or Functional model with one output, or call a subclassed model once "
            "on a batch so its output shape is known."
        )
    return (None,) + shape[1:]


def _known_output_shape(model):
    """The output shape as a tuple, or None when there is no single output tensor."""
    try:
        shape = model.output_shape
    except AttributeError:  # a subclassed model called eagerly records no graph node
        input_shape = getattr(model, "_build_input_shape", None)
        if input_shape is None:
            return None
        try:
            shape = model.compute_output_shape(input_shape)
        except (TypeError, ValueError, NotImplementedError, AttributeError):
            return None
    if isinstance(shape, tf.TensorShape):
        return tuple(shape.as_list()) if shape.rank is not None else None
    if isinstance(shape, tuple) and all(d is None or isinstance(d, int) for d in shape):
        return shape
    return None  # several outputs


def log_probabilities(outputs, kind, temperature):
    """log softmax(z / T) from logits, or from probabilities via log p = z + const."""
    if kind == "probabilities":
        outputs = tf.math.log(tf.clip_by_value(outputs, 1e-7, 1.0))
    return tf.nn.log_softmax(outputs / temperature, axis=-1)
