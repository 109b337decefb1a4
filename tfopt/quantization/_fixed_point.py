"""FixedPoint: n-bit uniform quantization (2..16 bits) on tfmot's machinery.

Ranges are tracked exactly as tfmot tracks them (``quant_ops.LastValueQuantize``
for weights, ``quant_ops.MovingAvgQuantize`` with ``ema_decay`` for
activations) and values go through TensorFlow's fake-quant ops with
``num_bits=bits``, whose gradient is the straight-through estimator (passed
inside the range, zero outside). tfopt adds: any bit width tfmot's ops take,
per-channel ranges for kernels of any rank, and the export step of
`tfopt.quantization._base` so an int8 TFLite file stores exactly the n-bit
levels.
"""

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

from tfopt.quantization import _base

MIN_BITS, MAX_BITS = 2, 16


def _validate_bits(bits):
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not (
            MIN_BITS <= bits <= MAX_BITS):
        raise ValueError(
            f"FixedPoint(bits=...) must be an integer from {MIN_BITS} to {MAX_BITS}, got "
            f"{bits!r}. TensorFlow's fake-quant ops support {MIN_BITS}-{MAX_BITS} bits; for "
            "1-bit weights use scheme='binary' (tfopt.quantization.Binary())."
        )
    return int(bits)


def _validate_decay(ema_decay):
    if ema_decay is None:
        return None
    if isinstance(ema_decay, bool) or not isinstance(ema_decay, (int, float)) or not (
            0.0 < ema_decay < 1.0):
        raise ValueError(
            f"FixedPoint(ema_decay=...) must be None (range of the last value: weights) "
            f"or in (0, 1) (moving average: activations, e.g. 0.999), got {ema_decay!r}."
        )
    return float(ema_decay)


def fake_quant_reference(x, min_value, max_value, num_bits, narrow_range):
    """TensorFlow's fake quant (nudged range, round half up) as plain ops.

    Per channel along the last axis when the ranges are vectors. Used where a
    fake-quant op must not appear in the inference graph.
    """
    quant_min = 1.0 if narrow_range else 0.0
    quant_max = float(2 ** num_bits - 1)
    scale = tf.maximum((max_value - min_value) / (quant_max - quant_min), 1e-12)
    zero_point = tf.clip_by_value(tf.round(quant_min - min_value / scale), quant_min, quant_max)
    nudged_min = (quant_min - zero_point) * scale
    nudged_max = (quant_max - zero_point) * scale
    shifted = tf.clip_by_value(x, nudged_min, nudged_max) - nudged_min
    return tf.floor(shifted / scale + 0.5) * scale + nudged_min


@keras.utils.register_keras_serializable(package="tfopt")
class FixedPoint(_base.Quantizer):
    """Uniform `bits`-bit quantization with a straight-through gradient.

    The default (per-channel, symmetric, narrow range) is the weight layout
    TFLite expects, at any width: ``FixedPoint(8)`` matches tfmot's 8-bit
    convolution weights, ``FixedPoint(4)`` keeps 15 levels per channel. For
    activations use ``per_channel=False, symmetric=False, narrow_range=False``
    and a moving-average range, ``ema_decay=0.999`` (tfmot's activation setup).

    As a weight quantizer with ``symmetric=True`` and ``bits <= 8``, its levels
    map exactly onto int8 values, so a TFLite int8 file holds the same levels.
    Wider or asymmetric weights train and predict in Keras at their width; the
    int8 converter rounds them to 8 bits.

    Args:
      bits: bits per value, an integer from 2 to 16. Defaults to 8.
      per_channel: one range per output channel (last axis). Defaults to True.
      symmetric: ranges symmetric around zero. Defaults to True.
      narrow_range: use ``2**bits - 1`` levels (e.g. [-127, 127]) so zero sits
        in the middle. Defaults to True.
      ema_decay: None makes this a weight quantizer: the range follows the
        latest value (tfmot's LastValueQuantizer). A decay in (0, 1) makes it
        an activation quantizer: the range is a moving average
        (MovingAverageQuantizer). Defaults to None.

    Example:
      >>> q = quantization.quantize(model, scheme=FixedPoint(4))
    """

    def __init__(self, bits=8, per_channel=True, symmetric=True, narrow_range=True,
                 ema_decay=None):
        self.bits = _validate_bits(bits)
        self.per_channel = _base._validate_bool(per_channel, "per_channel", "FixedPoint")
        self.symmetric = _base._validate_bool(symmetric, "symmetric", "FixedPoint")
        self.narrow_range = _base._validate_bool(narrow_range, "narrow_range", "FixedPoint")
        self.ema_decay = _validate_decay(ema_decay)

    def build(self, tensor_shape, name, layer):
        shape = ()
        if self.per_channel:
            if tensor_shape is None or not tensor_shape.rank or tensor_shape[-1] is None:
                raise ValueError(
                    f"FixedPoint(per_channel=True) needs a tensor with a known last axis; "
                    f"{name!r} of {layer.name!r} has shape {tensor_shape}. Activations "
                    "have none: use FixedPoint(bits, per_channel=False, symmetric=False, "
                    "narrow_range=False, ema_decay=0.999) for them."
                )
            shape = (int(tensor_shape[-1]),)
        ranges = {}
        for key, start in (("min_var", -6.0), ("max_var", 6.0)):
            ranges[key] = layer.add_weight(
                f"{name}_{key[:3]}", shape=shape, trainable=False,
                initializer=keras.initializers.Constant(start))
        return ranges

    def __call__(self, inputs, training, weights, **kwargs):
        x = tf.convert_to_tensor(inputs)
        low, high = weights["min_var"], weights["max_var"]
        if training or self.ema_decay is not None:
            q = self._track_and_quantize(x, low, high, training)
            if self.ema_decay is not None:
                return q
        else:
            # Weights in inference: the levels as constants-to-be. A b-bit fake-quant
            # op here would reach the converter, which rejects it on Dense kernels,
            # on non-narrow ranges and above 8 bits, and cannot fold a following
            # BatchNormalization through two fake quants.
            q = fake_quant_reference(x, low, high, self.bits, self.narrow_range)
        limit = self._int8_limit(low, high)
        return q if limit is None else _base.int8_storage(q, limit, training)

    def _track_and_quantize(self, x, low, high, training):
        kwargs = dict(per_channel=self.per_channel, is_training=training, num_bits=self.bits,
                      narrow_range=self.narrow_range, symmetric=self.symmetric)
        if self.ema_decay is not None:
            kwargs["ema_decay"] = self.ema_decay
        track = (quant_ops.LastValueQuantize if self.ema_decay is None
                 else quant_ops.MovingAvgQuantize)
        rank = x.shape.rank
        if self.per_channel and rank not in (1, 2, 4):
            # tfmot's per-channel range code knows ranks 2 and 4 only.
            flat = tf.reshape(x, [-1, x.shape[-1]])
            return tf.reshape(track(flat, low, high, **kwargs), tf.shape(x))
        return track(x, low, high, **kwargs)

    def _int8_limit(self, low, high):
        """The range whose int8 grid contains every level, or None if none does."""
        largest_level = 2 ** (self.bits - 1) - (1 if self.narrow_range else 0)
        multiple = 127 // largest_level
        if not self.symmetric or multiple < 1:
            return None
        step = (high - low) / (2 ** self.bits - 1 - (1 if self.narrow_range else 0))
        return 127.0 * step / multiple

    def get_config(self):
        return {"bits": self.bits, "per_channel": self.per_channel,
                "symmetric": self.symmetric, "narrow_range": self.narrow_range,
                "ema_decay": self.ema_decay}
