"""QuantizeConfigs for layers tfmot's 8-bit registry leaves out.

tfmot 0.8.1 quantizes convolutions, Dense, pooling, Add and Concatenate, and
has no config for the layers below, so its `quantize_model` refuses models
that hold them (squeeze-excite blocks, ConvNeXt, Transformers, audio and text
models). Each gets the smallest config under which the TFLite converter can
still make every tensor int8:

- layers whose output range is all the converter needs get their output
  fake-quantized (Multiply and the other elementwise merges, Embedding,
  LayerScale), like tfmot's Add (recorded ``tf.*`` ops become such layers
  first: `tfopt.quantization._tf_ops`);
- Conv1D gets per-tensor 8-bit kernels (it is a Conv2D in TFLite),
  MaxPooling1D none, as tfmot does for MaxPooling2D;
- layers with tensors inside them that QAT cannot reach (LayerNormalization's
  mean and variance, the LSTM/GRU gates, the attention scores and softmax of
  MultiHeadAttention) get what can be trained (output ranges, and for
  MultiHeadAttention its projection kernels) and leave the inner tensors to
  the converter, which calibrates them on representative data. Such layers
  are listed by `needs_calibration`: their int8 export needs
  ``representative_data``.
"""

import tf_keras as keras
from tensorflow_model_optimization.python.core.quantization.keras import (
    quantize_config as tfmot_quantize_config,
)
from tensorflow_model_optimization.python.core.quantization.keras import quantizers
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
    default_8bit_quantize_configs,
)

from tfopt._config import ConfigEquality
from tfopt.quantization._configs import LayerQuantizeConfig
from tfopt.quantization._fixed_point import FixedPoint

_L = keras.layers

# Elementwise merges TFLite runs in int8 (MUL, SUB, MAXIMUM, MINIMUM).
MERGES = (_L.Multiply, _L.Subtract, _L.Maximum, _L.Minimum)
# Layers whose inner tensors the converter calibrates (their output ranges are trained).
WRAPPED_CALIBRATED = (_L.LayerNormalization, _L.MultiHeadAttention)


def left_to_converter(layer):
    """Whether `quantize` leaves `layer` float for the converter to quantize whole.

    LSTM (and a Bidirectional LSTM): the converter turns it into TFLite's
    fused int8 LSTM kernel and calibrates its gates, but only when nothing
    wraps it; inside tfmot's QuantizeWrapper it fails ("Failed to duplicate
    values for the stateful op").
    """
    if isinstance(layer, _L.Bidirectional):
        layer = layer.forward_layer
    return type(layer) is _L.LSTM


def converter_problem(layer):
    """Why the TFLite converter cannot make `layer` int8, or None."""
    inner = layer.forward_layer if isinstance(layer, _L.Bidirectional) else layer
    if type(inner) in (_L.GRU, _L.SimpleRNN):
        return (f"TFLite has no fused int8 {type(inner).__name__} kernel: the converter "
                "keeps it as a WHILE loop, and its int8 calibration of that loop crashes "
                "(TensorFlow 2.21); use an LSTM, or leave this layer float and export "
                "mode='dynamic' or 'float16'")
    return None

def _is_layer_scale(layer):
    # ConvNeXt's LayerScale (x * gamma) is private to tf_keras.applications.convnext.
    return type(layer).__name__ == "LayerScale" and type(layer).__module__.startswith(
        "tf_keras.")


def supports(layer):
    """Whether a config from this module applies to `layer`."""
    kind = type(layer)
    return (kind in MERGES + WRAPPED_CALIBRATED + (_L.Conv1D, _L.MaxPooling1D, _L.Embedding)
            or _is_layer_scale(layer))


def quantize_config(layer, weight_quantizer=None):
    """A new QuantizeConfig for a layer `supports` accepts.

    Args:
      layer: the layer.
      weight_quantizer: the Conv1D kernel's quantizer. Defaults to None
        (symmetric 8-bit, one range per tensor: the converter fails on a
        per-channel kernel of rank 3 when it reshapes it to Conv2D's rank 4).
    """
    kind = type(layer)
    if kind is _L.Conv1D:
        return LayerQuantizeConfig(["kernel"], ["activation"],
                                   weight_quantizer or FixedPoint(8, per_channel=False))
    if kind is _L.MaxPooling1D:
        return default_8bit_quantize_configs.NoOpQuantizeConfig()
    if kind is _L.MultiHeadAttention:
        return MultiHeadAttentionQuantizeConfig()
    return default_8bit_quantize_configs.Default8BitOutputQuantizeConfig()


def same_scale_configs(model, names):
    """{name: NoOpQuantizeConfig} for AveragePooling2D layers in `names` feeding a Concatenate.

    TFLite's int8 AVERAGE_POOL_2D needs its input and output on one scale.
    tfmot gives the pool's output a range of its own; when that output also
    feeds a Concatenate (DenseNet's transition blocks) the converter refuses
    the two scales ("quantization parameters violate the same scale
    constraint"). Without an output quantizer the pool keeps its input's
    scale, as tfmot already does for MaxPooling2D. Pools elsewhere keep
    tfmot's config, so their files stay those of tfmot.
    """
    return {layer.name: default_8bit_quantize_configs.NoOpQuantizeConfig()
            for layer in model.layers
            if type(layer) is _L.AveragePooling2D and layer.name in names
            and any(isinstance(node.layer, _L.Concatenate) for node in layer._outbound_nodes)}


def needs_calibration(model):
    """Names of the layers of a `quantize` model whose int8 export needs representative data.

    Their inner tensors (LayerNormalization's statistics, recurrent gates,
    attention scores) have no trained range; the TFLite converter calibrates
    them when ``export.tflite(..., mode="int8", representative_data=x)`` gets
    data, and leaves them float without it.

    Args:
      model: a quantization-aware model, e.g. from `quantize`.

    Returns:
      A sorted list of layer names (the names of the layers inside the
      wrappers), empty when the learned ranges cover every tensor.
    """
    names = []
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if isinstance(inner, WRAPPED_CALIBRATED) or left_to_converter(inner):
            names.append(inner.name)
    return sorted(names)


_DENSE_PARTS = ("_query_dense", "_key_dense", "_value_dense", "_output_dense")


@keras.utils.register_keras_serializable(package="tfopt")
class MultiHeadAttentionQuantizeConfig(ConfigEquality, tfmot_quantize_config.QuantizeConfig):
    """8-bit QAT for MultiHeadAttention: its four projections, as tfmot does Dense.

    The query, key, value and output projections (EinsumDense layers) get
    tfmot's Dense treatment: per-tensor symmetric 8-bit kernels and a learned
    range on each output, the last of which is the layer's output. The
    attention scores and their softmax stay float in the Keras model; the
    TFLite converter calibrates them from representative data.

    Example:
      >>> q = quantize(model, quantize_configs={"attention": MultiHeadAttentionQuantizeConfig()})
    """

    def __init__(self):
        self.weight_quantizer = quantizers.LastValueQuantizer(
            num_bits=8, per_axis=False, symmetric=True, narrow_range=True)
        self.activation_quantizer = quantizers.MovingAverageQuantizer(
            num_bits=8, per_axis=False, symmetric=False, narrow_range=False)

    @staticmethod
    def _parts(layer):
        return [getattr(layer, name) for name in _DENSE_PARTS]

    def get_weights_and_quantizers(self, layer):
        return [(part.kernel, self.weight_quantizer) for part in self._parts(layer)]

    def get_activations_and_quantizers(self, layer):
        return [(part.activation, self.activation_quantizer) for part in self._parts(layer)]

    def set_quantize_weights(self, layer, quantize_weights):
        for part, kernel in zip(self._parts(layer), quantize_weights, strict=True):
            part.kernel = kernel

    def set_quantize_activations(self, layer, quantize_activations):
        for part, activation in zip(self._parts(layer), quantize_activations, strict=True):
            part.activation = activation

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {}
