"""count_flops() for Keras 3 models: the core FLOP formulas over the model's nodes."""

import keras
from absl import logging

from tfopt.core import flops
from tfopt.keras3 import _graph
from tfopt.keras3 import _models

# Raw ops on Keras tensors (keras.ops, Python operators) that cost one FLOP per output element.
_ARITHMETIC = frozenset(("Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum",
                         "Minimum"))


def count_flops(model):
    """Forward-pass FLOPs of a Keras 3 `model` for one example (batch size 1).

    The same count as `tfopt.pruning.count_flops` gives the same model built
    with tf-keras: multiply-adds count as 2 FLOPs and bias adds as 1 (the full
    convention is in `tfopt.core.flops`). Nested models are counted with the
    shapes they were built with, once per call.

    Args:
      model: a Keras 3 Functional model or a Sequential built with
        `keras.Input`, whose input shape is known apart from the batch size.

    Returns:
      The number of FLOPs, an int.

    Example:
      >>> model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4)])
      >>> count_flops(model)  # 2 * 5 * 4 multiply-adds + 4 bias adds
      44
    """
    _models.validate_keras3_model(model, "count_flops")
    return _model_flops(model)


def _model_flops(model):
    functional = _graph.graph_model(model)
    if functional is None:
        raise ValueError(
            f"count_flops needs the layer graph of {model.name!r}, but this "
            f"{type(model).__name__} model has none. Build it from keras.Input(shape) so "
            "Keras records the shapes its layers see.")
    total = 0
    for nodes in functional._nodes_by_depth.values():
        for node in nodes:
            if node.is_input:
                continue
            operation = node.operation
            if isinstance(operation, keras.Model):
                total += _model_flops(operation)
            else:
                total += _operation_flops(operation, node)
    return total


def _shapes(tensors):
    shapes = [tuple(t.shape) for t in tensors]
    return shapes[0] if len(shapes) == 1 else shapes


def _operation_flops(operation, node):
    name = _formula_name(operation)
    if name is None:
        # tfopt's own layers cost what their Keras base class costs; the weights of those
        # without a formula (FakeQuant, QuantReLU, ...) are quantizer ranges, not work.
        if (operation.weights and _graph.class_name(operation) not in flops.FREE
                and not type(operation).__module__.startswith("tfopt.")):
            logging.warning("count_flops counts %s (%s) as 0 FLOPs: tfopt does not know its "
                            "cost.", operation.name, type(operation).__name__)
        return 0
    input_shape, output_shape = _shapes(node.input_tensors), _shapes(node.outputs)
    for shape in flops.per_example(input_shape) + flops.per_example(output_shape):
        if any(d is None for d in shape):
            raise ValueError(
                f"count_flops needs fully known shapes; layer {operation.name!r} sees "
                f"{input_shape} -> {output_shape}. Give the model's Input a fixed shape, "
                "e.g. keras.Input((28, 28, 1)).")
    if name == "MultiHeadAttention":  # Keras 3 keeps no shapes: the call's inputs give them
        return flops.attention(operation, *[tuple(t.shape) for t in node.input_tensors])
    return flops.layer_flops(name, operation, input_shape, output_shape)


def _formula_name(operation):
    """The core formula's name for a Keras 3 layer or raw op, or None when unknown."""
    if not isinstance(operation, keras.layers.Layer):
        return flops.ELEMENTWISE if type(operation).__name__ in _ARITHMETIC else None
    name = _graph.class_name(operation)
    if name == "Bidirectional" and _graph.spec_for(operation) is None:
        return None
    if flops.counts(name):
        return name
    if type(operation).__name__ == "LayerScale":  # ConvNeXt's, private to keras.applications
        return "LayerScale"
    return None
