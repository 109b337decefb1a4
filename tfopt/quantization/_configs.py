"""LayerQuantizeConfig: which parts of a layer to quantize, and with what.

One serializable ``tfmot.quantization.keras.QuantizeConfig`` covers what tfopt
needs: low-bit kernels (binary, ternary, n-bit) with 8-bit activations, and
output-only quantization for layers tfmot has no config for (Rescaling,
Normalization, a BatchNormalization that no convolution absorbs), so a model
with them still converts to a full-int8 TFLite file.
"""

import tf_keras as keras
from tensorflow_model_optimization.python.core.quantization.keras import (
    quantize_config as tfmot_quantize_config,
)
from tensorflow_model_optimization.python.core.quantization.keras import (
    quantizers as tfmot_quantizers,
)

from tfopt._config import ConfigEquality
from tfopt.quantization import _lookup
from tfopt.quantization._fixed_point import FixedPoint


def _default_activation_quantizer():
    # tfmot's default 8-bit activation quantizer: asymmetric, per tensor, moving average.
    return tfmot_quantizers.MovingAverageQuantizer(
        num_bits=8, per_axis=False, symmetric=False, narrow_range=False)


def _names(value, argument):
    names = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(n, str) for n in names):
        raise ValueError(f"LayerQuantizeConfig({argument}=...) takes attribute names such as "
                         f"['kernel'], got {value!r}.")
    return names


@keras.utils.register_keras_serializable(package="tfopt")
class LayerQuantizeConfig(ConfigEquality, tfmot_quantize_config.QuantizeConfig):
    """Quantizes named weights, named activations and optionally the output of a layer.

    Pass one to `quantize` for a layer tfmot cannot quantize, through
    ``quantize_configs={layer_name: config}``.

    Args:
      weight_attrs: attribute names of the weights to quantize, e.g.
        ``["kernel"]``. Defaults to ().
      activation_attrs: attribute names of activation functions to quantize,
        e.g. ``["activation"]``. Defaults to ().
      weight_quantizer: quantizer of the weights: a name ("binary", "ternary",
        "fixed_point"), a tfopt or tfmot quantizer. Defaults to None
        (``FixedPoint(8)``).
      activation_quantizer: quantizer of activations and output. Defaults to
        None (tfmot's 8-bit moving-average quantizer).
      quantize_output: also quantize the layer's output. Defaults to False.

    Example:
      >>> config = LayerQuantizeConfig(["kernel"], ["activation"], FixedPoint(4))
      >>> q = quantize(model, quantize_configs={"my_dense": config})
    """

    def __init__(self, weight_attrs=(), activation_attrs=(), weight_quantizer=None,
                 activation_quantizer=None, quantize_output=False):
        self.weight_attrs = _names(weight_attrs, "weight_attrs")
        self.activation_attrs = _names(activation_attrs, "activation_attrs")
        self._weight_spec = weight_quantizer
        self._activation_spec = activation_quantizer
        self.weight_quantizer = (FixedPoint() if weight_quantizer is None
                                 else _lookup.get(weight_quantizer))
        self.activation_quantizer = (_default_activation_quantizer()
                                     if activation_quantizer is None
                                     else _lookup.get(activation_quantizer))
        if not isinstance(quantize_output, bool):
            raise ValueError(f"quantize_output must be True or False, got {quantize_output!r}.")
        self.quantize_output = quantize_output

    def without_activations(self):
        """The same weight quantization, with activations and output left alone."""
        return LayerQuantizeConfig(self.weight_attrs, (), self._weight_spec,
                                   self._activation_spec, False)

    def get_weights_and_quantizers(self, layer):
        return [(getattr(layer, name), self.weight_quantizer) for name in self.weight_attrs]

    def get_activations_and_quantizers(self, layer):
        return [(getattr(layer, name), self.activation_quantizer)
                for name in self.activation_attrs]

    def set_quantize_weights(self, layer, quantize_weights):
        for name, weight in zip(self.weight_attrs, quantize_weights, strict=True):
            setattr(layer, name, weight)

    def set_quantize_activations(self, layer, quantize_activations):
        for name, activation in zip(self.activation_attrs, quantize_activations, strict=True):
            setattr(layer, name, activation)

    def get_output_quantizers(self, layer):
        return [self.activation_quantizer] if self.quantize_output else []

    def get_config(self):
        def serialize(spec):
            if spec is None or isinstance(spec, str):
                return spec
            return keras.saving.serialize_keras_object(spec)

        return {"weight_attrs": list(self.weight_attrs),
                "activation_attrs": list(self.activation_attrs),
                "weight_quantizer": serialize(self._weight_spec),
                "activation_quantizer": serialize(self._activation_spec),
                "quantize_output": self.quantize_output}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
