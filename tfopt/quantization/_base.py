"""The base of tfopt's quantizers, and what they share: channel axes, the
straight-through estimator, and the last step that makes an int8 file exact.

A tfopt quantizer is a tfmot ``Quantizer`` (so it plugs into tfmot's
``QuantizeConfig`` and ``QuantizeWrapperV2``) that is also a small config object:
``get_config``/``from_config``, equality from its config, registered with Keras.

How weights reach the TFLite file: in inference mode (which is what the TFLite
converter traces) a weight quantizer ends, for convolution kernels (rank >= 3),
with an 8-bit per-channel fake quant whose range puts every quantized level on
an int8 value exactly, so the converter stores exactly those levels. Dense
kernels (rank 2) get no fake quant at all: the converter cannot transpose a
per-channel fake-quantized MatMul weight ("'tfl.transpose' op has mismatched
quantized axes"), so it quantizes the float weights itself, per output channel
with scale max|w|/127, which maps binary and ternary levels (and 8-bit ones)
exactly and keeps the number of distinct levels of any other width.
"""

import tensorflow as tf
from tensorflow_model_optimization.python.core.quantization.keras import (
    quantizers as tfmot_quantizers,
)

from tfopt._config import ConfigEquality

_INT8_MAX = 127


class Quantizer(ConfigEquality, tfmot_quantizers.Quantizer):
    """Base class of tfopt quantizers.

    Subclass it, implement ``__call__(inputs, training, weights)`` (and `build`
    if the quantizer keeps variables) and `get_config`, set `bits`, and
    register the class with ``keras.utils.register_keras_serializable``; an
    instance then works as a `quantize` scheme and in `LayerQuantizeConfig`.

    Attributes:
      bits: storage width of one quantized value, used by `packed_weight_bytes`.
      per_channel: whether each output channel (last axis) has its own scale.
    """

    bits = 8
    per_channel = True

    def build(self, tensor_shape, name, layer):
        return {}

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _validate_bool(value, name, owner):
    if not isinstance(value, bool):
        raise ValueError(f"{owner}({name}=...) must be True or False, got {value!r}.")
    return value


def _validate_positive(value, name, owner):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{owner}({name}=...) must be a positive number, got {value!r}.")
    return float(value)


def reduce_per_channel(reduce, x, per_channel):
    """`reduce` over every axis but the last (per channel) or over all axes."""
    if per_channel and x.shape.rank and x.shape.rank > 1:
        return reduce(x, axis=list(range(x.shape.rank - 1)))
    if per_channel:
        return x if x.shape.rank else reduce(x)
    return reduce(x)


def straight_through(x, quantize, clip):
    """``quantize(x)`` forward; gradient passed where ``|x| <= clip``, zero elsewhere.

    The forward value is exactly ``quantize(x)`` (no ``x + stop_gradient(q - x)``
    rounding), so levels stay exact.
    """

    @tf.custom_gradient
    def _quantize(value):
        def grad(upstream):
            return upstream * tf.cast(tf.abs(value) <= clip, upstream.dtype)

        return quantize(value), grad

    return _quantize(tf.convert_to_tensor(x))


def int8_storage(q, limit, training):
    """Ends a weight quantizer in inference mode so an int8 file holds `q`'s levels.

    Args:
      q: quantized weights.
      limit: per-channel (vector) or per-tensor (scalar) value that int8 +-127
        must stand for; chosen by the caller so every level is a multiple of
        ``limit / 127``.
      training: the quantizer's training flag; training needs no extra op
        (on the levels the fake quant below is an identity).

    Returns:
      `q`, through an 8-bit fake quant with range [-limit, limit] for kernels of
      rank >= 3 in inference mode.
    """
    if training or q.shape.rank is None or q.shape.rank < 3:
        return q
    limit = tf.maximum(tf.cast(limit, q.dtype), 1e-12)
    if limit.shape.rank == 1:
        return tf.quantization.fake_quant_with_min_max_vars_per_channel(
            q, -limit, limit, num_bits=8, narrow_range=True)
    return tf.quantization.fake_quant_with_min_max_vars(q, -limit, limit, num_bits=8,
                                                        narrow_range=True)
