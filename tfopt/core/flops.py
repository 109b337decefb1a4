"""FLOP formulas of Keras layers, keyed by class name.

Each formula reads the shapes a layer was called with (batch axis first) and a
few attributes that tf-keras and Keras 3 layers of that class share (a
convolution's ``kernel.shape``, a pooling layer's ``pool_size``, ...). Each
Keras path walks its model and calls `layer_flops` per layer call.

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
  element-wise arithmetic of raw ops (`x + y`, `x * 0.5`, `ELEMENTWISE`): 1 per
  output element and operation (Average adds the division).
- Embedding lookups (0 multiply-adds), activations, Concatenate, reshapes,
  padding and dropout: 0.
"""

import numpy as np

from tfopt.core import layer_specs

# The name a Keras path gives a raw element-wise arithmetic op (`x * 0.5`).
ELEMENTWISE = "elementwise"
_POOLING = tuple(f"{kind}Pooling{d}D" for kind in ("Max", "Average") for d in (1, 2, 3))
_GLOBAL_POOLING = tuple(f"Global{kind}Pooling{d}D" for kind in ("Max", "Average")
                        for d in (1, 2, 3))
_MERGES = ("Add", "Subtract", "Multiply", "Maximum", "Minimum", "Average")
# Layers whose weights cost no FLOPs (a lookup): no warning for them.
FREE = ("Embedding",)


def counts(class_name):
    """Whether `layer_flops` knows the cost of this class."""
    return class_name in _FORMULAS


def layer_flops(class_name, layer, input_shape, output_shape):
    """FLOPs of one call of a layer for one example.

    Args:
      class_name: the layer's built-in class name ("Conv2D"), `ELEMENTWISE`
        for a raw element-wise op, or "Bidirectional" for one around RNNs.
      layer: the layer, read for the attributes its formula needs.
      input_shape: the shape it was called with (a list of shapes for several
        inputs), batch axis first, every other dimension known.
      output_shape: its output shape, batch axis first.

    Returns:
      The FLOPs, an int, or None when the class's cost is unknown.
    """
    formula = _FORMULAS.get(class_name)
    if formula is None:
        return None
    return int(formula(layer, input_shape, output_shape))


def per_example(shapes):
    """Each shape of a (possibly nested) shape structure, as a tuple without the batch axis."""
    if isinstance(shapes, (list, tuple)) and shapes and not all(
            d is None or isinstance(d, int) for d in shapes):
        return [part for shape in shapes for part in per_example(shape)]
    return [tuple(shapes)[1:]]


def _size(shape):
    return int(np.prod(tuple(shape)[1:]))


def _bias(layer, outputs):
    return outputs if getattr(layer, "use_bias", False) else 0


def _shape(variable):
    return tuple(int(d) for d in variable.shape)


def _dense(layer, input_shape, output_shape):
    outputs = _size(output_shape)
    return 2 * outputs * input_shape[-1] + _bias(layer, outputs)


def _conv(layer, input_shape, output_shape):
    # kernel: (*window, input channels per group, filters); every output reads one window.
    outputs = _size(output_shape)
    return 2 * outputs * int(np.prod(_shape(layer.kernel)[:-1])) + _bias(layer, outputs)


def _transposed(layer, input_shape, output_shape):
    # kernel: (*window, filters, input channels); every input scatters one window.
    window_and_filters = int(np.prod(_shape(layer.kernel)[:-1]))
    return 2 * _size(input_shape) * window_and_filters + _bias(layer, _size(output_shape))


def _depthwise(layer, input_shape, output_shape):
    # From kernel_size: Keras 3 calls the depthwise kernel "kernel", tf-keras "depthwise_kernel".
    outputs = _size(output_shape)
    window = int(np.prod(layer.kernel_size))
    return 2 * outputs * window + _bias(layer, outputs)


def _separable(layer, input_shape, output_shape):
    outputs = _size(output_shape)
    positions = outputs // layer.filters
    window = int(np.prod(layer.kernel_size))
    middle = _shape(layer.pointwise_kernel)[-2]  # input channels * depth multiplier
    return 2 * positions * middle * (window + layer.filters) + _bias(layer, outputs)


def einsum_dense(layer, input_shape, output_shape=None):
    """From the equation and the input shape alone (MultiHeadAttention passes no output)."""
    inputs, rest = layer.equation.split(",")
    kernel, output = rest.split("->")
    shape = tuple(input_shape)
    sizes = dict(zip(kernel, _shape(layer.kernel)))
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


def attention(layer, query, value, key=None):
    """MultiHeadAttention's FLOPs from its query, value and key shapes (batch first)."""
    query, value = tuple(query), tuple(value)
    key = value if key is None else tuple(key)
    attended = query[:-1] + (layer._num_heads, layer._value_dim)
    total = sum(einsum_dense(dense, shape) for dense, shape in (
        (layer._query_dense, query), (layer._key_dense, key), (layer._value_dense, value),
        (layer._output_dense, attended)))
    # Each query position meets every key position along the attention axes.
    keys = int(np.prod([key[axis] for axis in layer._attention_axes]))
    pairs = _size(query[:-1]) * keys * layer._num_heads
    return total + 2 * pairs * (layer._key_dim + layer._value_dim)


def _attention(layer, input_shape, output_shape):
    return attention(layer, layer._query_shape, layer._value_shape, layer._key_shape)


def _batch_norm(layer, input_shape, output_shape):
    return 2 * _size(input_shape)


def _layer_norm(layer, input_shape, output_shape):
    return (5 + int(layer.scale) + int(layer.center)) * _size(input_shape)


def _normalization(layer, input_shape, output_shape):
    return 2 * _size(input_shape)


def _per_output(layer, input_shape, output_shape):
    return _size(output_shape)


def _merge(layer, input_shape, output_shape):
    return (len(input_shape) - 1) * _size(output_shape)


def _average(layer, input_shape, output_shape):
    return len(input_shape) * _size(output_shape)  # the sums, then the division


def _pooling(layer, input_shape, output_shape):
    return _size(output_shape) * int(np.prod(layer.pool_size))


def _global_pooling(layer, input_shape, output_shape):
    return _size(input_shape)


def _rnn(layer, input_shape, output_shape):
    # The kernel holds every gate's units side by side: 4 for LSTM, 3 for GRU, 1 for SimpleRNN.
    width = _shape(layer.cell.kernel)[-1]
    steps, features = input_shape[1], input_shape[-1]
    biases = 2 if getattr(layer, "reset_after", False) else 1
    per_step = 2 * (features + layer.units) * width + _bias(layer, biases * width)
    return steps * per_step


def _bidirectional(layer, input_shape, output_shape):
    return sum(_rnn(rnn, input_shape, None) for rnn in (layer.forward_layer, layer.backward_layer))


_FORMULAS = {
    "Dense": _dense,
    **dict.fromkeys(layer_specs.TRANSPOSED, _transposed),
    **dict.fromkeys(layer_specs.DEPTHWISE, _depthwise),
    **dict.fromkeys(layer_specs.SEPARABLE, _separable),
    **dict.fromkeys(layer_specs.CONV, _conv),
    "EinsumDense": einsum_dense,
    "MultiHeadAttention": _attention,
    "BatchNormalization": _batch_norm,
    "LayerNormalization": _layer_norm,
    "Normalization": _normalization,
    "LayerScale": _per_output,  # ConvNeXt's, private to keras.applications
    ELEMENTWISE: _per_output,
    **dict.fromkeys(_MERGES, _merge),
    "Average": _average,
    **dict.fromkeys(_POOLING, _pooling),
    **dict.fromkeys(_GLOBAL_POOLING, _global_pooling),
    **dict.fromkeys(layer_specs.RNN, _rnn),
    "Bidirectional": _bidirectional,
}
