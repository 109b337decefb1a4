"""Activation ranges: 8-bit fake quant over a moving min/max, and the input layer using it.

A range is two non-trainable variables of the layer that owns it, so
`.keras` files and SavedModels carry it. While training (or while
`calibrating`) each call moves it towards the batch's min/max (min <= 0 <=
max, so zero stays exact); the first batch a range sees sets it. The values
always go through `keras.quantizers.fake_quant_with_min_max_vars`, which on
the TensorFlow backend is the FakeQuant op the TFLite converter reads the
range from: that is what makes a model quantization-aware for
`tfopt.export.tflite`.
"""

import keras
from keras import ops

DEFAULT_DECAY = 0.99


class Range:
    """One activation range (min and max variables) owned by a layer."""

    def __init__(self, layer, name):
        self.low = layer.add_weight(name=f"{name}_min", shape=(), initializer="zeros",
                                    trainable=False)
        self.high = layer.add_weight(name=f"{name}_max", shape=(), initializer="zeros",
                                     trainable=False)

    @property
    def variables(self):
        return (self.low, self.high)

    def __call__(self, x, update, decay=DEFAULT_DECAY):
        """`x` fake-quantized to 8 bits; moves the range to `x`'s first if `update`."""
        if update:
            x_low = ops.minimum(ops.cast(ops.min(x), self.low.dtype), 0.0)
            x_high = ops.maximum(ops.cast(ops.max(x), self.high.dtype), 0.0)
            # An unset range (both zero) takes the batch's range at once.
            fresh = ops.logical_and(ops.equal(self.low, 0.0), ops.equal(self.high, 0.0))
            self.low.assign(ops.where(fresh, x_low, decay * self.low + (1.0 - decay) * x_low))
            self.high.assign(ops.where(fresh, x_high,
                                       decay * self.high + (1.0 - decay) * x_high))
        return keras.quantizers.fake_quant_with_min_max_vars(
            x, self.low, ops.maximum(self.high, self.low + 1e-6), num_bits=8)


@keras.saving.register_keras_serializable(package="tfopt")
class FakeQuant(keras.layers.Layer):
    """An 8-bit fake quant over a moving range: what `quantize` puts at each model input.

    Args:
      decay: weight of the old range in the moving average. Defaults to 0.99.
      **kwargs: `keras.layers.Layer` arguments (name, ...).

    Example:
      >>> x = FakeQuant(name="quantize_input")(keras.Input((8, 8, 1)))
    """

    def __init__(self, decay=DEFAULT_DECAY, **kwargs):
        super().__init__(**kwargs)
        self.decay = validate_decay(decay)
        self.calibrating = False

    def build(self, input_shape):
        self.range = Range(self, "output")

    def call(self, inputs, training=None):
        return self.range(inputs, bool(training) or self.calibrating, self.decay)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "decay": self.decay}


def validate_decay(decay):
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 < decay < 1.0:
        raise ValueError(f"decay must be a number in (0, 1) (the weight of the old range in "
                         f"the moving average, e.g. 0.99), got {decay!r}.")
    return float(decay)
