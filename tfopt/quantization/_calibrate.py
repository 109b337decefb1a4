"""Starting ranges for a fresh QAT model, so it predicts like the float model.

tfmot builds every range variable at a constant: weights and activations at
[-6, 6], the model input at [0, 0]. Until training has run for a while (the
activation ranges are moving averages with decay 0.999), a fresh QAT model
predicts with those ranges: with [0, 0] at the input, it predicts from zeros.
`init_weight_ranges` sets each weight range from the weights, with the
quantizer's own training-mode code. `calibrate` runs representative inputs
through the model in inference mode and sets every range tfmot's range
functions track to the min/max seen, as post-training quantization would.
"""

import contextlib

import tensorflow as tf
from tensorflow_model_optimization.python.core.quantization.keras import quant_ops
from tensorflow_model_optimization.python.core.quantization.keras import quantize_wrapper

_RANGE_FUNCTIONS = ("LastValueQuantize", "MovingAvgQuantize", "AllValuesQuantize")


def init_weight_ranges(model):
    """Runs every weight quantizer of `model` once in training mode."""
    for layer in model.layers:
        if isinstance(layer, quantize_wrapper.QuantizeWrapper):
            for weight, quantizer, variables in layer._weight_vars:
                quantizer(weight, True, weights=variables)


def _observed_range(inputs, per_channel, num_bits, narrow_range, symmetric):
    """tfmot's range of one tensor (zero included; symmetric if asked)."""
    rank = inputs.shape.rank
    if per_channel and rank is not None and rank < 2:
        low = high = inputs
    else:
        axes = list(range(rank - 1)) if per_channel else None
        low, high = tf.reduce_min(inputs, axis=axes), tf.reduce_max(inputs, axis=axes)
    if symmetric:
        ratio = -1.0 if narrow_range else -((1 << num_bits) - 2) / (1 << num_bits)
        return tf.minimum(low, high / ratio), tf.maximum(high, low * ratio)
    return tf.minimum(low, 0.0), tf.maximum(high, 0.0)


@contextlib.contextmanager
def _observing():
    """Replaces tfmot's range functions with a min/max over everything seen."""
    seen = set()

    def observe(inputs, min_var, max_var, per_channel=False, num_bits=8, narrow_range=False,
                symmetric=False, **unused):
        low, high = _observed_range(inputs, per_channel, num_bits, narrow_range, symmetric)
        if min_var.ref() in seen:
            low, high = tf.minimum(low, min_var), tf.maximum(high, max_var)
        seen.add(min_var.ref())
        min_var.assign(low)
        max_var.assign(high)
        return quant_ops._FakeQuantWithMinMaxVars(inputs, min_var, max_var, per_channel,
                                                  num_bits, narrow_range)

    originals = {name: getattr(quant_ops, name) for name in _RANGE_FUNCTIONS}
    for name in originals:
        setattr(quant_ops, name, observe)
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(quant_ops, name, function)


def _batches(data, batch_size=64):
    if isinstance(data, list):
        data = tuple(data)
    return tf.data.Dataset.from_tensor_slices(data).batch(batch_size)


def calibrate(model, data):
    """Sets every tracked range of a QAT model from representative inputs.

    Args:
      model: a model returned by `quantize`.
      data: model inputs as `tfopt._data.validate_examples` returns them: an
        array, or a list/dict of arrays for several inputs.
    """
    with _observing():
        for batch in _batches(data):
            model(batch, training=False)
