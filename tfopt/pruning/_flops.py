"""count_flops(): the forward-pass cost of one example, counted from layer shapes.

The count is analytic: each layer's FLOPs follow from its weights and the
shapes it was called with, so no profiler or data is needed.

Convention (one multiply-add is 2 FLOPs):
- Dense, convolutions (1D/2D/3D, transposed, depthwise, separable) and RNN
  gate matmuls: 2 per multiply-add, plus 1 per bias add.
- LSTM (4 gates), GRU (3), SimpleRNN (1): input and recurrent matmuls and
  bias adds of every gate, times the time steps; GRU with ``reset_after``
  adds its second bias. Element-wise gate arithmetic is not counted.
- BatchNormalization (inference, statistics folded): 2 per element.
- Pooling: 1 per window element read (pool size per output element); global
  pooling 1 per input element.
- Embedding lookups, activations, merges (Add, Concatenate), reshapes and
  dropout: 0. Other layers with weights count 0 and are logged.
"""

import numpy as np
import tf_keras as keras
from absl import logging

from tfopt import _clone
from tfopt.pruning import _graph

_L = keras.layers
_TRANSPOSED = (_L.Conv1DTranspose, _L.Conv2DTranspose, _L.Conv3DTranspose)
_DEPTHWISE = (_L.DepthwiseConv1D, _L.DepthwiseConv2D)
_SEPARABLE = (_L.SeparableConv1D, _L.SeparableConv2D)
_CONV = (_L.Conv1D, _L.Conv2D, _L.Conv3D)
_POOLING = tuple(getattr(_L, f"{kind}Pooling{d}D")
                 for kind in ("Max", "Average") for d in (1, 2, 3))
_GLOBAL_POOLING = tuple(getattr(_L, f"Global{kind}Pooling{d}D")
                        for kind in ("Max", "Average") for d in (1, 2, 3))
_GATES = ((_L.LSTM, 4), (_L.GRU, 3), (_L.SimpleRNN, 1))
_FREE = (_L.Embedding,)


def count_flops(model):
    """Forward-pass FLOPs of `model` for one example (batch size 1).

    Multiply-adds count as 2 FLOPs and bias adds as 1 (the full convention is
    in this module's docstring). Layers inside a `PruneWrapper` are counted
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
            layer = _graph.unwrap(node.layer)
            if _clone.is_graph_model(layer):
                total += _model_flops(layer)
            else:
                total += _layer_flops(layer, node.input_shapes, node.output_shapes)
    return total


def _layer_flops(layer, input_shape, output_shape):
    count = _counter(layer)
    if count is None:
        if layer.weights and not isinstance(layer, _FREE):
            logging.warning("count_flops counts %s (%s) as 0 FLOPs: tfopt does not know its "
                            "cost.", layer.name, type(layer).__name__)
        return 0
    for shape in (input_shape, output_shape):
        if any(d is None for d in tuple(shape)[1:]):
            raise ValueError(
                f"count_flops needs fully known shapes; layer {layer.name!r} sees "
                f"{input_shape} -> {output_shape}. Give the model's Input a fixed shape, "
                "e.g. keras.Input((28, 28, 1)).")
    return int(count(layer, tuple(input_shape), tuple(output_shape)))


def _counter(layer):
    for kinds, count in _COUNTERS:
        if isinstance(layer, kinds):
            return count
    return None


def _size(shape):
    return int(np.prod(shape[1:]))


def _bias(layer, outputs):
    return outputs if getattr(layer, "use_bias", False) else 0


def _dense(layer, input_shape, output_shape):
    outputs = _size(output_shape)
    return 2 * outputs * input_shape[-1] + _bias(layer, outputs)


def _conv(layer, input_shape, output_shape):
    # kernel: (*window, input channels per group, filters); every output reads one window.
    outputs = _size(output_shape)
    return 2 * outputs * int(np.prod(layer.kernel.shape[:-1])) + _bias(layer, outputs)


def _transposed(layer, input_shape, output_shape):
    # kernel: (*window, filters, input channels); every input scatters one window.
    window_and_filters = int(np.prod(layer.kernel.shape[:-1]))
    return 2 * _size(input_shape) * window_and_filters + _bias(layer, _size(output_shape))


def _depthwise(layer, input_shape, output_shape):
    outputs = _size(output_shape)
    window = int(np.prod(layer.depthwise_kernel.shape[:-2]))
    return 2 * outputs * window + _bias(layer, outputs)


def _separable(layer, input_shape, output_shape):
    outputs = _size(output_shape)
    positions = outputs // layer.filters
    window = int(np.prod(layer.depthwise_kernel.shape[:-2]))
    middle = int(layer.pointwise_kernel.shape[-2])  # input channels * depth multiplier
    return 2 * positions * middle * (window + layer.filters) + _bias(layer, outputs)


def _batch_norm(layer, input_shape, output_shape):
    return 2 * _size(input_shape)


def _pooling(layer, input_shape, output_shape):
    return _size(output_shape) * int(np.prod(layer.pool_size))


def _global_pooling(layer, input_shape, output_shape):
    return _size(input_shape)


def _rnn(layer, input_shape, output_shape):
    gates = next(g for kind, g in _GATES if isinstance(layer, kind))
    width = gates * layer.units
    steps, features = input_shape[1], input_shape[-1]
    biases = 2 if getattr(layer, "reset_after", False) else 1
    per_step = 2 * (features + layer.units) * width + _bias(layer, biases * width)
    return steps * per_step


# Subclasses first: transposed convolutions are Conv1D/2D/3D subclasses.
_COUNTERS = (
    (_L.Dense, _dense),
    (_TRANSPOSED, _transposed),
    (_DEPTHWISE, _depthwise),
    (_SEPARABLE, _separable),
    (_CONV, _conv),
    (_L.BatchNormalization, _batch_norm),
    (_POOLING, _pooling),
    (_GLOBAL_POOLING, _global_pooling),
    (tuple(kind for kind, _ in _GATES), _rnn),
)
