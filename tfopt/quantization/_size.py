"""packed_weight_bytes: what a model's weights take at their quantized widths."""

import math

from tensorflow_model_optimization.python.core.quantization.keras import quantize_layer
from tensorflow_model_optimization.python.core.quantization.keras import quantize_wrapper

from tfopt import _clone
from tfopt.quantization import _base

_FLOAT_BYTES = 4


def _width_and_scales(quantizer, shape):
    """(bits per value, number of float32 scales) of a weight under `quantizer`."""
    if isinstance(quantizer, _base.Quantizer):
        bits, per_channel = quantizer.bits, quantizer.per_channel
    elif hasattr(quantizer, "num_bits"):  # tfmot's LastValueQuantizer and its kin
        bits, per_channel = quantizer.num_bits, getattr(quantizer, "per_axis", False)
    else:
        return None
    channels = int(shape[-1]) if per_channel and shape.rank else 1
    return bits, channels


def _weight_bytes(weight, quantizer):
    count = weight.shape.num_elements()
    packing = _width_and_scales(quantizer, weight.shape) if quantizer is not None else None
    if packing is None:
        return _FLOAT_BYTES * count
    bits, scales = packing
    return math.ceil(count * bits / 8) + _FLOAT_BYTES * scales


def packed_weight_bytes(model):
    """Bytes the model's weights take, each quantized weight at its quantizer's width.

    A weight quantized by tfopt's `Binary` counts 1 bit, `Ternary` 2 bits,
    ``FixedPoint(b)`` b bits, tfmot's 8-bit quantizers 8 bits (rounded up to
    whole bytes per tensor), plus one float32 scale per channel (per-channel
    quantizers) or per tensor. Every other weight (biases, BatchNormalization
    statistics, float layers) counts as float32. Quantizer bookkeeping (range
    variables, step counters) is not model weights and is not counted.

    Args:
      model: any tf_keras model: a `quantize` model, or a float one (then the
        result is 4 bytes per weight).

    Returns:
      The number of bytes, an int.

    Example:
      >>> tiny = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4)])
      >>> packed_weight_bytes(tiny)  # 20 + 4 float32 weights
      96
      >>> packed_weight_bytes(quantize(tiny))  # 20 int8 weights, 1 scale, 4 float32 biases
      40
    """
    total = 0
    for layer in _clone.all_layers(model):
        if _clone.is_graph_model(layer) or isinstance(layer, quantize_layer.QuantizeLayer):
            continue
        if isinstance(layer, quantize_wrapper.QuantizeWrapper):
            # The wrapper swaps quantized kernels for tensors on the inner layer,
            # which then no longer lists them among its weights.
            quantized = [(weight, quantizer) for weight, quantizer, _ in
                         getattr(layer, "_weight_vars", [])]
            seen = {id(weight) for weight, _ in quantized}
            plain = [(weight, None) for weight in layer.layer.weights if id(weight) not in seen]
            total += sum(_weight_bytes(w, quantizer) for w, quantizer in quantized + plain)
        else:
            total += sum(_weight_bytes(weight, None) for weight in layer.weights)
    return total
