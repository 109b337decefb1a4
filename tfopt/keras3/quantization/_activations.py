"""Weightless Keras 3 layers with a fake-quantized output, for the converter's ranges.

An int8 TFLite op needs a range for each tensor it writes. Merges (Add,
Multiply, Concatenate, ...), average pooling, activations and a
BatchNormalization that could not be folded compute new values, so each gets
an output range (`QuantizeMixin` with no weights). Layers that only move
int8 values around (Flatten, Reshape, max pooling, padding, Dropout) keep
their input's range and stay as they are; `quantize` leaves them alone.
"""

import keras
from keras import ops

from tfopt.keras3.quantization import _ranges
from tfopt.keras3.quantization._layers import QuantizeMixin


def _register(cls):
    return keras.saving.register_keras_serializable(package="tfopt")(cls)


_L = keras.layers


@_register
class QuantAdd(QuantizeMixin, _L.Add):
    """`keras.layers.Add` with a fake-quantized output."""


@_register
class QuantSubtract(QuantizeMixin, _L.Subtract):
    """`keras.layers.Subtract` with a fake-quantized output."""


@_register
class QuantMultiply(QuantizeMixin, _L.Multiply):
    """`keras.layers.Multiply` with a fake-quantized output (squeeze-excite gates)."""


@_register
class QuantAverage(QuantizeMixin, _L.Average):
    """`keras.layers.Average` with a fake-quantized output.

    The converter computes an average as a sum, then a multiply: the sum gets
    a range of its own.
    """

    def _build_ranges(self):
        self._sum_range = _ranges.Range(self, "sum")
        self._extra.extend(self._sum_range.variables)

    def _quantized_call(self, base_call, args, kwargs, update):
        (inputs,) = args
        total = inputs[0]
        for tensor in inputs[1:]:
            total = ops.add(total, tensor)
        return ops.multiply(self._sum_range(total, update, self.decay), 1.0 / len(inputs))


@_register
class QuantConcatenate(QuantizeMixin, _L.Concatenate):
    """`keras.layers.Concatenate` with a fake-quantized output."""


@_register
class QuantAveragePooling1D(QuantizeMixin, _L.AveragePooling1D):
    """`keras.layers.AveragePooling1D` with a fake-quantized output."""


@_register
class QuantAveragePooling2D(QuantizeMixin, _L.AveragePooling2D):
    """`keras.layers.AveragePooling2D` with a fake-quantized output."""


@_register
class QuantGlobalAveragePooling1D(QuantizeMixin, _L.GlobalAveragePooling1D):
    """`keras.layers.GlobalAveragePooling1D` with a fake-quantized output."""


@_register
class QuantGlobalAveragePooling2D(QuantizeMixin, _L.GlobalAveragePooling2D):
    """`keras.layers.GlobalAveragePooling2D` with a fake-quantized output."""


@_register
class QuantReLU(QuantizeMixin, _L.ReLU):
    """`keras.layers.ReLU` with a fake-quantized output."""


@_register
class QuantActivation(QuantizeMixin, _L.Activation):
    """`keras.layers.Activation` with a fake-quantized output."""


@_register
class QuantSoftmax(QuantizeMixin, _L.Softmax):
    """`keras.layers.Softmax` with a fake-quantized output."""


@_register
class QuantBatchNormalization(QuantizeMixin, _L.BatchNormalization):
    """A BatchNormalization `quantize` could not fold, frozen, as an int8 multiply and add.

    It always normalizes in inference form with its moving statistics (gamma
    and beta still train): ``x * scale`` then ``+ offset``, each with a range,
    which the converter turns into an int8 MUL and ADD (Keras' own formula
    leaves float tensors between them).
    """

    def _build_ranges(self):
        self._scaled_range = _ranges.Range(self, "scaled")
        self._extra.extend(self._scaled_range.variables)

    def _quantized_call(self, base_call, args, kwargs, update):
        inputs = args[0]
        rank = len(inputs.shape)
        shape = [1] * rank
        shape[self.axis % rank] = -1
        gamma = self.gamma if self.scale else 1.0
        beta = self.beta if self.center else 0.0
        scale = gamma * ops.rsqrt(self.moving_variance + self.epsilon)
        offset = beta - self.moving_mean * scale
        scaled = self._scaled_range(inputs * ops.reshape(scale, shape), update, self.decay)
        return scaled + ops.reshape(offset, shape)


@_register
class QuantRescaling(QuantizeMixin, _L.Rescaling):
    """`keras.layers.Rescaling` as an int8 multiply (and add), each with a range."""

    def _build_ranges(self):
        self._scaled_range = _ranges.Range(self, "scaled")
        self._extra.extend(self._scaled_range.variables)

    def _quantized_call(self, base_call, args, kwargs, update):
        inputs = ops.cast(args[0], self.compute_dtype)
        scaled = self._scaled_range(inputs * ops.cast(self.scale, inputs.dtype), update,
                                    self.decay)
        return scaled + ops.cast(self.offset, inputs.dtype)


@_register
class FoldedBatchNormalization(_L.Layer):
    """Where a BatchNormalization was: `quantize` folded it into the layer before it.

    An identity; the statistics, gamma and beta live in that layer
    (``fold_batch_norm``).
    """

    def call(self, inputs, training=None, mask=None):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


# Built-in layer class name -> its output-quantized twin.
OUTPUT_CLASSES = {cls.__mro__[2].__name__: cls for cls in (
    QuantAdd, QuantSubtract, QuantMultiply, QuantAverage, QuantConcatenate,
    QuantAveragePooling1D, QuantAveragePooling2D, QuantGlobalAveragePooling1D,
    QuantGlobalAveragePooling2D, QuantReLU, QuantActivation, QuantSoftmax,
    QuantBatchNormalization, QuantRescaling)}

# Layers that move int8 values without computing new ones: no range of their own.
# (Dropout and its kin are identities in inference; the others convert to int8
# RESHAPE, MAX_POOL_2D, REDUCE_MAX, PAD, STRIDED_SLICE and RESIZE_*.)
PASS_THROUGH = frozenset({
    "Flatten", "Reshape", "MaxPooling1D", "MaxPooling2D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout",
    "AlphaDropout", "Identity", "InputLayer", "UpSampling1D", "UpSampling2D"})
