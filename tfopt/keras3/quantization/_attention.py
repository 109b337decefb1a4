"""Attention and layer normalization for Keras 3 QAT, written so every tensor has a range.

`QuantMultiHeadAttention` builds its four projections as `QuantEinsumDense`
layers (quantized kernels, fake-quantized outputs) and computes attention
with a range on each intermediate tensor: the scaled query, the scores, the
softmax and the combined heads. `keras.models.clone_model` does not reach
inside a layer, so the projections are made quantization-aware by the layer
itself.

`QuantLayerNormalization` computes the normalization as int8-friendly steps
(MEAN, SUB, MUL, MEAN, ADD, RSQRT, MUL, MUL, ADD), each with a range: Keras' own formula
leaves a float NEG (and float tensors around it) in the TFLite file.
"""

import sys

import keras
from keras import ops

from tfopt.keras3.quantization import _layers
from tfopt.keras3.quantization import _quantizers
from tfopt.keras3.quantization import _ranges

_L = keras.layers
PROJECTIONS = ("_query_dense", "_key_dense", "_value_dense", "_output_dense")


@keras.saving.register_keras_serializable(package="tfopt")
class QuantMultiHeadAttention(_L.MultiHeadAttention):
    """`keras.layers.MultiHeadAttention` trained quantization-aware.

    Args:
      weight_quantizer: quantizer of the projection kernels (per-tensor, as for
        every EinsumDense). Defaults to "int8".
      decay: weight of the old range in the ranges' moving averages.
        Defaults to 0.99.
      **kwargs: `keras.layers.MultiHeadAttention` arguments (``use_gate``
        is not supported).
    """

    def __init__(self, *args, weight_quantizer="int8", decay=_ranges.DEFAULT_DECAY, **kwargs):
        super().__init__(*args, **kwargs)
        if getattr(self, "_use_gate", False):
            raise ValueError("QuantMultiHeadAttention does not support use_gate=True.")
        self.weight_quantizer = _quantizers.get(weight_quantizer)
        self.decay = _ranges.validate_decay(decay)
        self.calibrating = False

    def build(self, query_shape, value_shape, key_shape=None):
        # MultiHeadAttention.build creates its projections through its module's
        # EinsumDense: for the length of this build that name makes QuantEinsumDense.
        module = sys.modules[_L.MultiHeadAttention.__module__]
        original = module.EinsumDense
        quantizer = keras.saving.serialize_keras_object(self.weight_quantizer)
        module.EinsumDense = lambda *args, **kwargs: _layers.QuantEinsumDense(
            *args, weight_quantizer=quantizer, decay=self.decay, **kwargs)
        try:
            super().build(query_shape, value_shape, key_shape)
        finally:
            module.EinsumDense = original
        self._ranges = {name: _ranges.Range(self, name) for name in (
            "scaled_query", "scores", "softmax", "attention")}

    def _compute_attention(self, query, key, value, attention_mask=None, training=None,
                           return_attention_scores=False, use_causal_mask=False):
        update = bool(training) or self.calibrating
        ranges = self._ranges
        query = ops.multiply(query, ops.cast(self._inverse_sqrt_key_dim, query.dtype))
        query = ranges["scaled_query"](query, update, self.decay)
        scores = ranges["scores"](ops.einsum(self._dot_product_equation, key, query), update,
                                  self.decay)
        scores = ranges["softmax"](self._masked_softmax(scores, attention_mask), update,
                                   self.decay)
        dropped = self._dropout_layer(scores, training=training) if self._dropout else scores
        output = ops.einsum(self._combine_equation, dropped, value)
        return ranges["attention"](output, update, self.decay), scores

    def set_calibrating(self, on):
        self.calibrating = bool(on)

    def copy_weights(self, source):
        """Copies a `keras.layers.MultiHeadAttention`'s projection weights into this layer."""
        for name in PROJECTIONS:
            getattr(self, name).set_quantized_weights(getattr(source, name).get_weights())

    def get_config(self):
        return {**super().get_config(),
                "weight_quantizer": keras.saving.serialize_keras_object(self.weight_quantizer),
                "decay": self.decay}


@keras.saving.register_keras_serializable(package="tfopt")
class QuantLayerNormalization(_layers.QuantizeMixin, _L.LayerNormalization):
    """`keras.layers.LayerNormalization` as int8 steps, each with a range (no rms_scaling)."""

    _STEPS = ("mean", "centered", "squared", "variance", "variance_epsilon", "inverse_std",
              "normalized", "scaled")

    def _build_ranges(self):
        if self.rms_scaling:
            raise ValueError("QuantLayerNormalization does not support rms_scaling=True.")
        self._step_ranges = {name: _ranges.Range(self, name) for name in self._STEPS}
        for step in self._step_ranges.values():
            self._extra.extend(step.variables)

    def _quantized_call(self, base_call, args, kwargs, update):
        (inputs,) = args

        def ranged(name, x):
            return self._step_ranges[name](x, update, self.decay)

        axis = self.axis
        mean = ranged("mean", ops.mean(inputs, axis=axis, keepdims=True))
        centered = ranged("centered", ops.subtract(inputs, mean))
        squared = ranged("squared", ops.multiply(centered, centered))
        variance = ranged("variance", ops.mean(squared, axis=axis, keepdims=True))
        shifted = ranged("variance_epsilon", ops.add(variance, self.epsilon))
        inverse_std = ranged("inverse_std", ops.rsqrt(shifted))
        outputs = ranged("normalized", ops.multiply(centered, inverse_std))
        rank = len(inputs.shape)
        axes = [a % rank for a in (axis if isinstance(axis, (list, tuple)) else [axis])]
        shape = [inputs.shape[i] if i in axes else 1 for i in range(rank)]
        if self.gamma is not None:
            outputs = ranged("scaled", ops.multiply(outputs, ops.reshape(self.gamma, shape)))
        if self.beta is not None:
            outputs = ops.add(outputs, ops.reshape(self.beta, shape))
        return outputs
