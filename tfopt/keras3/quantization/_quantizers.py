"""Weight quantizers for Keras 3 layers, in keras.ops: Int8, Binary, Ternary, FixedPoint.

A quantizer maps a weight to its quantized value. It sees the weight with
its channel axes last: `channels` is how many trailing axes index an output
channel (1 for a convolution kernel, 2 for a depthwise kernel, whose output
channels are input channel x multiplier, 0 for a per-tensor weight).

How the levels reach an int8 TFLite file (the same contract as tfopt's
tf-keras quantizers): in inference mode, which the converter traces, a
convolution kernel ends with an 8-bit per-channel fake quant whose range puts
every level on an int8 value, so the file stores exactly those levels. A
Dense or EinsumDense kernel (``channels == 0`` for `Int8`) gets one per-tensor
8-bit fake quant: the converter rejects a per-channel fake quant on a MatMul
weight ("'tfl.transpose' op has mismatched quantized axes"). Low-bit Dense
kernels get no fake quant in inference at all: the converter then quantizes
the float levels itself, per output channel with scale max|w|/127, which maps
binary and ternary levels exactly. The same holds for 1-D and transposed
convolutions, whose kernels the converter reshapes or transposes ("'tfl.reshape'
op requires 'output' type ... to be cast compatible", "mismatched quantized
axes").

Training goes through a straight-through estimator, ``w + stop_gradient(q -
w)``; inference returns ``q`` itself, so levels are exact.
"""

import keras
from keras import ops

from tfopt._config import ConfigEquality

_EPSILON = 1e-12


def _register(cls):
    return keras.saving.register_keras_serializable(package="tfopt")(cls)


def _validate_bool(value, name, owner):
    if not isinstance(value, bool):
        raise ValueError(f"{owner}({name}=...) must be True or False, got {value!r}.")
    return value


def _validate_positive(value, name, owner):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{owner}({name}=...) must be a positive number, got {value!r}.")
    return float(value)


def reduce_channels(reduce, x, channels):
    """`reduce` over every axis but the last `channels` ones (all axes for 0)."""
    rank = len(x.shape)
    axes = tuple(range(rank - channels)) if channels else None
    return reduce(x, axis=axes)


def fake_quant_int8(w, limit, channels):
    """8-bit narrow-range fake quant of `w` over [-limit, limit], per channel if `channels`.

    The TensorFlow backend emits the FakeQuant op the TFLite converter reads.
    A depthwise kernel's two channel axes are merged for the op (a reshape,
    which is how TFLite stores the kernel anyway) and split again after.
    """
    limit = ops.maximum(ops.cast(limit, w.dtype), _EPSILON)
    if not channels:
        return keras.quantizers.fake_quant_with_min_max_vars(w, -limit, limit, num_bits=8,
                                                             narrow_range=True)
    shape = tuple(w.shape)
    merged = ops.reshape(w, shape[:len(shape) - channels] + (-1,))
    flat_limit = ops.reshape(limit, (-1,))
    q = keras.quantizers.fake_quant_with_min_max_vars(merged, -flat_limit, flat_limit,
                                                      num_bits=8, narrow_range=True, axis=-1)
    return ops.reshape(q, shape)


def straight_through(w, q):
    """Forward `q`, gradient of the identity: ``w + stop_gradient(q - w)``."""
    return w + ops.stop_gradient(q - w)


class Quantizer(ConfigEquality):
    """Base class of tfopt's Keras 3 weight quantizers.

    Subclass it, implement `quantize` (the levels, without gradient) and
    `get_config`, set `bits`, and register the class with
    ``keras.saving.register_keras_serializable``.

    Attributes:
      bits: storage width of one quantized value (`packed_weight_bytes`).
      per_channel: whether each output channel has its own scale.
    """

    bits = 8
    per_channel = True

    def quantize(self, w, channels):
        """``(levels, int8_limit)``: the quantized weight and the range int8 +-127 stands for.

        `int8_limit` is None when no int8 grid holds every level exactly.
        """
        raise NotImplementedError

    def __call__(self, w, channels, training, int8_op=True):
        """The quantized weight: STE in training, exact levels (and their int8 op) else.

        `int8_op` False leaves the int8 rounding of the levels to the converter
        (weights where it takes no per-channel fake quant).
        """
        channels = channels if self.per_channel else 0
        q, limit = self.quantize(w, channels)
        if training:
            return straight_through(w, q)
        if limit is None or not int8_op or channels == 0:
            return q
        return fake_quant_int8(q, limit, channels)

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@_register
class Int8(Quantizer):
    """8-bit symmetric weights: range max|w| (per channel for convolutions), narrow range.

    The fake quant stays in the graph in training and inference (TFLite's int8
    weights, read by the converter). Dense, EinsumDense, 1-D and transposed
    convolution kernels are per-tensor: the converter reshapes or transposes
    those kernels and fails on a per-channel range there.

    Args:
      per_channel: one range per output channel of a convolution. Defaults to True.
    """

    def __init__(self, per_channel=True):
        self.per_channel = _validate_bool(per_channel, "per_channel", "Int8")

    def quantize(self, w, channels):
        return None, ops.stop_gradient(reduce_channels(ops.max, ops.abs(w), channels))

    def __call__(self, w, channels, training, int8_op=True):
        # Per-tensor where the converter takes no per-channel fake quant.
        channels = channels if self.per_channel and int8_op else 0
        _, limit = self.quantize(w, channels)
        # keras' fake quant passes the gradient inside the range: all of w.
        return fake_quant_int8(w, limit, channels)

    def get_config(self):
        return {"per_channel": self.per_channel}


@_register
class Binary(Quantizer):
    """Weights in {-1, +1} times a per-channel scale, mean |w| (XNOR-Net).

    Args:
      per_channel: one scale per output channel; False: one per tensor.
        Defaults to True.
    """

    bits = 1

    def __init__(self, per_channel=True):
        self.per_channel = _validate_bool(per_channel, "per_channel", "Binary")

    def quantize(self, w, channels):
        scale = ops.stop_gradient(reduce_channels(ops.mean, ops.abs(w), channels))
        # cast/multiply, not where: the converter folds these into a constant.
        return (2.0 * ops.cast(w >= 0, w.dtype) - 1.0) * scale, scale

    def get_config(self):
        return {"per_channel": self.per_channel}


@_register
class Ternary(Quantizer):
    """Weights in {-1, 0, +1} times a per-channel scale (Ternary Weight Networks).

    Weights with ``|w| <= threshold * mean(|w|)`` become 0, the others
    ``sign(w) * scale`` with scale the mean |w| of the weights kept.

    Args:
      threshold: fraction of the channel's mean |w| below which a weight is
        zeroed. Defaults to 0.7.
      per_channel: one scale per output channel. Defaults to True.
    """

    bits = 2

    def __init__(self, threshold=0.7, per_channel=True):
        self.threshold = _validate_positive(threshold, "threshold", "Ternary")
        self.per_channel = _validate_bool(per_channel, "per_channel", "Ternary")

    def quantize(self, w, channels):
        magnitude = ops.abs(w)
        delta = self.threshold * reduce_channels(ops.mean, magnitude, channels)
        kept = ops.cast(magnitude > delta, w.dtype)
        total = reduce_channels(ops.sum, magnitude * kept, channels)
        count = reduce_channels(ops.sum, kept, channels)
        scale = ops.stop_gradient(total / ops.maximum(count, 1.0))
        return ops.sign(w) * kept * scale, scale

    def get_config(self):
        return {"threshold": self.threshold, "per_channel": self.per_channel}


@_register
class FixedPoint(Quantizer):
    """Symmetric `bits`-bit weights: ``2**bits - 1`` levels per channel over max|w|.

    With ``bits <= 8`` every level lies on an int8 value of the file, so the
    int8 file holds exactly these levels.

    Args:
      bits: bits per weight, 2 to 8. Defaults to 8.
      per_channel: one range per output channel. Defaults to True.
    """

    def __init__(self, bits=8, per_channel=True):
        if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
            raise ValueError(
                f"FixedPoint(bits=...) must be an integer from 2 to 8, got {bits!r}. Keras 3 "
                "QAT stores weights in int8; for 1-bit weights use scheme='binary'.")
        self.bits = bits
        self.per_channel = _validate_bool(per_channel, "per_channel", "FixedPoint")

    def quantize(self, w, channels):
        largest = 2 ** (self.bits - 1) - 1
        limit = ops.stop_gradient(reduce_channels(ops.max, ops.abs(w), channels))
        step = ops.maximum(limit, _EPSILON) / largest
        q = ops.clip(ops.round(w / step), -largest, largest) * step
        # int8 value k * (127 // largest) stands for level k.
        return q, step * 127.0 / (127 // largest)

    def get_config(self):
        return {"bits": self.bits, "per_channel": self.per_channel}


_QUANTIZERS = {"int8": Int8, "binary": Binary, "ste_sign": Binary, "ternary": Ternary,
               "ste_ternary": Ternary, "fixed_point": FixedPoint}


def get(identifier):
    """Resolves a quantizer from a name, an instance or a Keras config dict.

    Names: "int8" (`Int8`), "binary" / "ste_sign" (`Binary`), "ternary" /
    "ste_ternary" (`Ternary`), "fixed_point" (``FixedPoint(8)``).

    Args:
      identifier: a name, a `Quantizer` instance, or the dict
        ``keras.saving.serialize_keras_object`` made of one.

    Returns:
      A quantizer instance.

    Example:
      >>> get("ste_sign")
      Binary(per_channel=True)
    """
    if isinstance(identifier, Quantizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _QUANTIZERS:
        return _QUANTIZERS[identifier.lower()]()
    if isinstance(identifier, dict) and "class_name" in identifier:
        restored = keras.saving.deserialize_keras_object(identifier)
        if isinstance(restored, Quantizer):
            return restored
    raise ValueError(
        f"Unknown quantizer {identifier!r}. Use one of {sorted(_QUANTIZERS)}, an instance "
        "such as tfopt.keras3.quantization.FixedPoint(4), or a serialized quantizer config.")
