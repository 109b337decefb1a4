"""count_flops(): the forward-pass cost of one example, counted from layer shapes.

The count is analytic: each layer's FLOPs follow from its weights and the
shapes it was called with, so no profiler or data is needed.

Convention (one multiply-add is 2 FLOPs):
- Dense, convolutions (1D/2D/3D, transposed, depthwise, separable) and RNN
  gate matmuls: 2 per multiply-add, plus 1 per bias add.
- LSTM (4 gates), GRU (3), SimpleRNN (1): input and recurrent matmuls and
  bias adds of every gate, times the time steps; GRU with ``reset_after``
  adds its second bias. Element-wise gate arithmetic is not counted.
- Bidirectional: its forward and backward RNNs.
- EinsumDense: 2 per multiply-add of its einsum, plus 1 per bias add.
- MultiHeadAttention: its four projections (EinsumDense), and 2 per
  multiply-add of the attention scores (query . key) and of the weighted sum
  of values. Softmax, scaling and dropout are not counted.
- BatchNormalization (inference, statistics folded): 2 per element.
- LayerNormalization: 7 per element (mean 1, centre 1, variance 2, normalize
  1, scale and offset 2); 1 less for each of scale and offset turned off.
- Normalization (preprocessing) and LayerScale: 2 and 1 per element.
- Pooling: 1 per window element read (pool size per output element); global
  pooling 1 per input element.
- Element-wise merges (Add, Subtract, Multiply, Maximum, Minimum, Average) and
  element-wise arithmetic of TF ops (`x + y`, `x * 0.5`): 1 per output element
  and operation (Average adds the division).
- Embedding lookups (0 multiply-adds), activations, Concatenate, reshapes,
  padding and dropout: 0. Other layers with weights count 0 and are logged.
"""

import numpy as np
import tensorflow as tf
import tf_keras as keras
from absl import logging

from tfopt import _clone
from tfopt.pruning import _channels
from tfopt.pruning import _registry

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
_MERGES = (_L.Add, _L.Subtract, _L.Multiply, _L.Maximum, _L.Minimum, _L.Average)
# TF ops called on Keras tensors (TFOpLambda layers) that cost one FLOP per output element.
_ARITHMETIC = frozenset((
    "__operators__.add", "__operators__.sub", "__operators__.mul", "__operators__.truediv",
    "math.add", "math.subtract", "math.multiply", "math.truediv", "math.divide",
    "math.scalar_mul", "math.maximum", "math.minimum"))
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
            layer = _channels.unwrap(node.layer)
            if _clone.is_graph_model(layer):
                total += _model_flops(layer)
            else:
                total += _layer_flops(layer, node.input_shapes, node.output_shapes)
    return total


def _per_example(shapes):
    """Each shape of a (possibly nested) shape structure, as a tuple without the batch axis."""
    if isinstance(shapes, (list, tuple)) and shapes and not all(
            d is None or isinstance(d, int) for d in shapes):
        return [part for shape in shapes for part in _per_example(shape)]
    return [tuple(shapes)[1:]]


def _layer_flops(layer, input_shape, output_shape):
    count = _counter(layer)
    if count is None:
        if layer.weights and not isinstance(layer, _FREE):
            logging.warning("count_flops counts %s (%s) as 0 FLOPs: tfopt does not know its "
                            "cost.", layer.name, type(layer).__name__)
        return 0
    for shape in _per_example(input_shape) + _per_example(output_shape):
        if any(d is None for d in shape):
            raise ValueError(
                f"count_flops needs fully known shapes; layer {layer.name!r} sees "
                f"{input_shape} -> {output_shape}. Give the model's Input a fixed shape, "
                "e.g. keras.Input((28, 28, 1)).")
    return int(count(layer, input_shape, output_shape))


def _counter(layer):
    for kinds, count in _COUNTERS:
        if isinstance(layer, kinds):
            return count
    if _registry.bidirectional_rnn(layer):
        return _bidirectional
    if _channels.tf_op_symbol(layer) is not None:
        return _arithmetic if _channels.tf_op_symbol(layer) in _ARITHMETIC else None
    if type(layer).__name__ == "LayerScale":  # ConvNeXt's, private to tf_keras.applications
        return _layer_scale
    return None


def _size(shape):
    return int(np.prod(tuple(shape)[1:]))


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


def _einsum_dense(layer, input_shape, output_shape=None):
    """From the equation and the input shape alone (MultiHeadAttention passes no output)."""
    inputs, rest = layer.equation.split(",")
    kernel, output = rest.split("->")
    shape = tuple(input_shape)
    sizes = dict(zip(kernel, layer.kernel.shape))
    if "..." in inputs:
        named = inputs.replace("...", "")
        outputs = int(np.prod(shape[1:len(shape) - len(named)]))  # the ellipsis, batch aside
    else:
        named, outputs = inputs[1:], 1  # the first letter is the batch
        shape = shape[1:]
    sizes.update(zip(named, shape[len(shape) - len(named):]))
    outputs *= int(np.prod([sizes[letter] for letter in output.replace("...", "")
                            if letter in sizes]))
    # Every output element sums over the kernel's letters that the output lacks.
    summed = int(np.prod([sizes[letter] for letter in kernel if letter not in output]))
    return 2 * outputs * summed + (outputs if layer.bias is not None else 0)


def _attention(layer, input_shape, output_shape):
    query, value = tf.TensorShape(layer._query_shape), tf.TensorShape(layer._value_shape)
    key = value if layer._key_shape is None else tf.TensorShape(layer._key_shape)
    attended = query[:-1].concatenate([layer._num_heads, layer._value_dim])
    total = sum(_einsum_dense(dense, shape) for dense, shape in (
        (layer._query_dense, query), (layer._key_dense, key), (layer._value_dense, value),
        (layer._output_dense, attended)))
    # Each query position meets every key position along the attention axes.
    keys = int(np.prod([key[axis] for axis in layer._attention_axes]))
    pairs = _size(query[:-1]) * keys * layer._num_heads
    return total + 2 * pairs * (layer._key_dim + layer._value_dim)


def _batch_norm(layer, input_shape, output_shape):
    return 2 * _size(input_shape)


def _layer_norm(layer, input_shape, output_shape):
    return (5 + int(layer.scale) + int(layer.center)) * _size(input_shape)


def _normalization(layer, input_shape, output_shape):
    return 2 * _size(input_shape)


def _layer_scale(layer, input_shape, output_shape):
    return _size(output_shape)


def _merge(layer, input_shape, output_shape):
    operations = len(input_shape) - 1 + int(isinstance(layer, _L.Average))
    return operations * _size(output_shape)


def _arithmetic(layer, input_shape, output_shape):
    return _size(output_shape)


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


def _bidirectional(layer, input_shape, output_shape):
    return sum(_rnn(rnn, input_shape, None) for rnn in (layer.forward_layer, layer.backward_layer))


# Subclasses first: transposed convolutions are Conv1D/2D/3D subclasses.
_COUNTERS = (
    (_L.Dense, _dense),
    (_TRANSPOSED, _transposed),
    (_DEPTHWISE, _depthwise),
    (_SEPARABLE, _separable),
    (_CONV, _conv),
    (_L.EinsumDense, _einsum_dense),
    (_L.MultiHeadAttention, _attention),
    (_L.BatchNormalization, _batch_norm),
    (_L.LayerNormalization, _layer_norm),
    (_L.Normalization, _normalization),
    (_MERGES, _merge),
    (_POOLING, _pooling),
    (_GLOBAL_POOLING, _global_pooling),
    (tuple(kind for kind, _ in _GATES), _rnn),
)
