"""packed_weight_bytes for Keras 3 models: weights at their quantized widths."""

import math

from tfopt.keras3 import _clone
from tfopt.keras3 import _models
from tfopt.keras3._weights import private_name
from tfopt.keras3.quantization import _attention
from tfopt.keras3.quantization import _layers
from tfopt.keras3.quantization import _ranges
from tfopt.keras3.quantization import _recurrent

_FLOAT_BYTES = 4


def _packed(count, bits, scales):
    # The same arithmetic as tfopt.quantization.packed_weight_bytes: the values at
    # `bits` each, rounded up to whole bytes per tensor, plus float32 scales.
    return math.ceil(count * bits / 8) + _FLOAT_BYTES * scales


def _layer_bytes(layer):
    if isinstance(layer, _attention.QuantMultiHeadAttention):
        return sum(_layer_bytes(getattr(layer, name)) for name in _attention.PROJECTIONS)
    if isinstance(layer, (_recurrent.QuantLSTM, _recurrent.QuantGRU)):
        kernels = (layer.cell.kernel, layer.cell.recurrent_kernel)
        bias = _FLOAT_BYTES * math.prod(layer.cell.bias.shape) if layer.cell.use_bias else 0
        return bias + sum(_packed(math.prod(k.shape), layer.cell.weight_quantizer.bits, 1)
                          for k in kernels)
    if not isinstance(layer, _layers.QuantizeMixin):
        return sum(_FLOAT_BYTES * math.prod(v.shape) for v in layer.weights)
    quantized = {id(getattr(layer, private_name(layer, attr))): layout
                 for attr, layout in layer.quantized_weights}
    total = 0
    for variable in layer.base_variables():
        count = math.prod(variable.shape)
        layout = quantized.get(id(variable))
        if layout is None:
            total += _FLOAT_BYTES * count
            continue
        channels = _layers.scale_axes(layer.weight_quantizer, layout)
        shape = tuple(variable.shape)
        if layout == _layers.TRANSPOSE and channels:
            shape = shape[:-2] + (shape[-1], shape[-2])
        total += _packed(count, layer.weight_quantizer.bits,
                         math.prod(shape[len(shape) - channels:]) if channels else 1)
    return total


def packed_weight_bytes(model):
    """Bytes the model's weights take, each quantized kernel at its quantizer's width.

    A kernel quantized by `Binary` counts 1 bit per weight, `Ternary` 2 bits,
    ``FixedPoint(b)`` b bits, `Int8` 8 bits (rounded up to whole bytes per
    tensor), plus one float32 scale per channel (per-channel quantizers) or per
    tensor. Biases and unquantized layers count as float32. Ranges, zero masks
    and the statistics of a folded BatchNormalization (part of the kernel and
    bias in the file) are not counted.

    Args:
      model: a Keras 3 model: a `quantize` model, or a float one (then the
        result is 4 bytes per weight).

    Returns:
      The number of bytes, an int.

    Example:
      >>> tiny = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4)])
      >>> packed_weight_bytes(quantize(tiny))  # 20 int8 weights, 1 scale, 4 float32 biases
      40
    """
    _models.validate_keras3_model(model, "packed_weight_bytes")
    return sum(_layer_bytes(layer) for layer in _clone.all_layers(model)
               if not _models.is_graph_model(layer)
               and not isinstance(layer, _ranges.FakeQuant))
