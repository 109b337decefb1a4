"""count_flops(): the forward-pass cost of one example, counted from layer shapes.

The count is analytic: each layer's FLOPs follow from its weights and the
shapes it was called with, so no profiler or data is needed. The formulas and
their convention are `tfopt.core.flops`'; this module walks a tf-keras model's
nodes and names each layer's class (TF ops on Keras tensors included). Layers
with weights whose cost tfopt does not know count 0 and are logged.
"""

from absl import logging

from tfopt import _clone
from tfopt.core import flops
from tfopt.pruning import _channels
from tfopt.pruning import _registry

# TF ops called on Keras tensors (TFOpLambda layers) that cost one FLOP per output element.
_ARITHMETIC = frozenset((
    "__operators__.add", "__operators__.sub", "__operators__.mul", "__operators__.truediv",
    "math.add", "math.subtract", "math.multiply", "math.truediv", "math.divide",
    "math.scalar_mul", "math.maximum", "math.minimum"))


def count_flops(model):
    """Forward-pass FLOPs of `model` for one example (batch size 1).

    Multiply-adds count as 2 FLOPs and bias adds as 1 (the full convention is
    in `tfopt.core.flops`). Layers inside a `PruneWrapper` are counted
    dense: pruned weights are zeros that a dense kernel still multiplies, so
    sparsity alone does not lower this count; `shrink` does, by removing the
    pruned units. Nested models are counted with the shapes they were built
    with, once per call.

    Args:
      model: a built Sequential or Functional tf_keras model, plain or pruned,
        whose input shape is known apart from the batch size.

    Returns:
      The number of FLOPs, an int.

    Example:
      >>> model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4)])
      >>> count_flops(model)  # 2 * 5 * 4 multiply-adds + 4 bias adds
      44
    """
    _clone.validate_model(model, "count_flops")
    return _model_flops(model)


def _model_flops(model):
    if not getattr(model, "_is_graph_network", False):
        raise ValueError(
            f"count_flops needs the layer graph of {model.name!r}, but this Sequential model "
            "was built without one. Start it with keras.Input(shape) so Keras records the "
            "shapes its layers see."
        )
    total = 0
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            if node.is_input:
                continue
            layer = _channels.unwrap(node.layer)
            if _clone.is_graph_model(layer):
                total += _model_flops(layer)
            else:
                total += _layer_flops(layer, node.input_shapes, node.output_shapes)
    return total


def _layer_flops(layer, input_shape, output_shape):
    name = _formula_name(layer)
    if name is None:
        if layer.weights and _registry.class_name(layer) not in flops.FREE:
            logging.warning("count_flops counts %s (%s) as 0 FLOPs: tfopt does not know its "
                            "cost.", layer.name, type(layer).__name__)
        return 0
    for shape in flops.per_example(input_shape) + flops.per_example(output_shape):
        if any(d is None for d in shape):
            raise ValueError(
                f"count_flops needs fully known shapes; layer {layer.name!r} sees "
                f"{input_shape} -> {output_shape}. Give the model's Input a fixed shape, "
                "e.g. keras.Input((28, 28, 1)).")
    return flops.layer_flops(name, layer, input_shape, output_shape)


def _formula_name(layer):
    """The core formula's name for a tf-keras layer, or None when tfopt does not know it."""
    symbol = _channels.tf_op_symbol(layer)
    if symbol is not None:
        return flops.ELEMENTWISE if symbol in _ARITHMETIC else None
    name = _registry.class_name(layer)
    if name == "Bidirectional" and not _registry.bidirectional_rnn(layer):
        return None
    if flops.counts(name):
        return name
    if type(layer).__name__ == "LayerScale":  # ConvNeXt's, private to tf_keras.applications
        return "LayerScale"
    return None
