"""Binary and ternary weight quantizers (XNOR-Net, Ternary Weight Networks).

Both keep one float scale per output channel (the last axis of a Dense or
Conv2D kernel) and train through a straight-through estimator clipped at
``|w| <= clip``: the gradient reaches a weight unchanged while it is within the
clip range and stops once it leaves it, so weights cannot drift without bound.
The scale is a statistic of the weights, not a trained parameter, and gets no
gradient.
"""

import tensorflow as tf
import tf_keras as keras

from tfopt.quantization import _base


@keras.utils.register_keras_serializable(package="tfopt")
class Binary(_base.Quantizer):
    """Weights in {-1, +1} times a per-channel scale, mean |w| of the channel.

    ``q = sign(w) * mean(|w|)`` (XNOR-Net, Rastegari et al., 2016), with
    ``sign(0) = +1``. One bit per weight plus one float scale per channel.

    Args:
      per_channel: one scale per output channel (last axis); False uses one
        scale for the whole tensor. Defaults to True.
      clip: the straight-through gradient passes where ``|w| <= clip`` and is
        zero elsewhere. Defaults to 1.0.

    Example:
      >>> q = quantization.quantize(model, scheme=Binary())   # same as "binary"
    """

    bits = 1

    def __init__(self, per_channel=True, clip=1.0):
        self.per_channel = _base._validate_bool(per_channel, "per_channel", "Binary")
        self.clip = _base._validate_positive(clip, "clip", "Binary")

    def scale(self, w):
        """The per-channel (or per-tensor) scale, mean |w|."""
        return _base.reduce_per_channel(tf.reduce_mean, tf.abs(w), self.per_channel)

    def __call__(self, inputs, training, weights, **kwargs):
        w = tf.convert_to_tensor(inputs)
        scale = tf.stop_gradient(self.scale(w))

        def binarize(x):
            # cast/mul rather than tf.where: the TFLite converter folds these
            # into a constant before the int8 fake quant, but not SelectV2.
            return (2.0 * tf.cast(x >= 0, x.dtype) - 1.0) * scale

        q = _base.straight_through(w, binarize, self.clip)
        return _base.int8_storage(q, scale, training)

    def get_config(self):
        return {"per_channel": self.per_channel, "clip": self.clip}


@keras.utils.register_keras_serializable(package="tfopt")
class Ternary(_base.Quantizer):
    """Weights in {-1, 0, +1} times a per-channel scale (Ternary Weight Networks).

    Per channel (Li & Liu, 2016): weights with ``|w| <= threshold * mean(|w|)``
    become 0; the others become ``sign(w) * scale`` with scale the mean |w| of
    the weights kept. Two bits per weight plus one float scale per channel.

    Args:
      threshold: fraction of the channel's mean |w| below which a weight is
        zeroed. Defaults to 0.7 (the TWN value).
      per_channel: one scale and threshold per output channel; False uses one
        for the whole tensor. Defaults to True.
      clip: the straight-through gradient passes where ``|w| <= clip``.
        Defaults to 1.0.

    Example:
      >>> q = quantization.quantize(model, scheme=Ternary(threshold=0.5))
    """

    bits = 2

    def __init__(self, threshold=0.7, per_channel=True, clip=1.0):
        self.threshold = _base._validate_positive(threshold, "threshold", "Ternary")
        self.per_channel = _base._validate_bool(per_channel, "per_channel", "Ternary")
        self.clip = _base._validate_positive(clip, "clip", "Ternary")

    def delta_and_scale(self, w):
        """The zeroing threshold and the scale of the kept weights, per channel."""
        magnitude = tf.abs(w)
        delta = self.threshold * _base.reduce_per_channel(tf.reduce_mean, magnitude,
                                                          self.per_channel)
        kept = tf.cast(magnitude > delta, w.dtype)
        total = _base.reduce_per_channel(tf.reduce_sum, magnitude * kept, self.per_channel)
        count = _base.reduce_per_channel(tf.reduce_sum, kept, self.per_channel)
        return delta, total / tf.maximum(count, 1.0)

    def __call__(self, inputs, training, weights, **kwargs):
        w = tf.convert_to_tensor(inputs)
        delta, scale = (tf.stop_gradient(t) for t in self.delta_and_scale(w))

        def ternarize(x):
            return tf.sign(x) * tf.cast(tf.abs(x) > delta, x.dtype) * scale

        q = _base.straight_through(w, ternarize, self.clip)
        return _base.int8_storage(q, scale, training)

    def get_config(self):
        return {"threshold": self.threshold, "per_channel": self.per_channel,
                "clip": self.clip}
