"""tfopt's tfmot QuantizeScheme: tfmot's 8-bit scheme plus what tfopt adds.

The scheme keeps tfmot's layout transforms (BatchNormalization folding,
activation fusing) and registry, and on top of them:

- quantizes the output of Rescaling layers (what `tfopt.quantization._affine`
  turns Rescaling, Normalization and unabsorbed BatchNormalization into), which
  tfmot has no config for;
- gives Dense and Conv2D kernels a tfopt weight quantizer (binary, ternary,
  n-bit), except the layers kept at int8;
- makes prune-preserving weight quantization survive a `.keras` reload
  (`tfopt.quantization._prune_preserving`);
- undoes one tfmot transform side effect: a Conv2D/Dense/Add followed by a ReLU
  layer gets tfmot's NoOpQuantizeConfig, which also drops its weight
  quantization (and any config the user passed for it). tfopt gives such a
  layer its weight quantization back, activations still left to the ReLU.
"""

import copy

import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from tensorflow_model_optimization.python.core.quantization.keras import (
    quantize_layout_transform,
    quantize_registry,
    quantize_scheme,
)
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
    default_8bit_quantize_configs,
    default_8bit_quantize_registry,
    default_8bit_quantize_scheme,
)

from tfopt.quantization import _lookup
from tfopt.quantization import _prune_preserving
from tfopt.quantization._configs import LayerQuantizeConfig

_L = keras.layers
_NoOp = default_8bit_quantize_configs.NoOpQuantizeConfig
OUTPUT_ONLY = (_L.Rescaling, _L.Normalization, _L.BatchNormalization)
LOW_BIT = (_L.Dense, _L.Conv2D)


def takes_low_bit(layer):
    """Whether a tfopt weight quantizer applies to this layer's kernel."""
    return type(layer) in LOW_BIT


class Registry(quantize_registry.QuantizeRegistry):
    """A tfmot registry with tfopt's output-only and low-bit configs in front."""

    def __init__(self, base, weight_quantizer=None, int8_layers=()):
        self._base = base
        self._default = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
        self._weight_quantizer = weight_quantizer
        self._int8_layers = frozenset(int8_layers)

    def supports(self, layer):
        if type(layer) in OUTPUT_ONLY:
            return True
        # The prune-preserving registry claims every weightless layer but then
        # asks the default registry for its config; require both.
        return self._default.supports(layer) and self._base.supports(layer)

    def get_quantize_config(self, layer):
        if type(layer) in OUTPUT_ONLY:
            # The converter drops a multiply by one; a second range right after
            # the input's would then be left in float.
            return LayerQuantizeConfig(quantize_output=not _is_identity(layer))
        if (self._weight_quantizer is not None and takes_low_bit(layer)
                and layer.name not in self._int8_layers):
            return LayerQuantizeConfig(["kernel"], ["activation"], self._weight_quantizer)
        return _prune_preserving.preserving_config(self._base.get_quantize_config(layer))


def _is_identity(layer):
    return (type(layer) is _L.Rescaling and np.all(np.asarray(layer.scale) == 1)
            and np.all(np.asarray(layer.offset) == 0))


def _weights_only(config):
    if isinstance(config, LayerQuantizeConfig):
        return config.without_activations() if config.weight_attrs else None
    if not getattr(config, "weight_attrs", None):
        return None
    config = copy.copy(config)  # keeps a weight quantizer set after construction
    config.activation_attrs = []
    config.quantize_output = False
    return config


class LayoutTransform(quantize_layout_transform.QuantizeLayoutTransform):
    """tfmot's layout transforms, then weight quantization restored where they drop it."""

    def __init__(self, base, registry):
        self._base = base
        self._registry = registry

    def apply(self, model, layer_quantize_map):
        given = {name: meta.get("quantize_config") for name, meta in layer_quantize_map.items()}
        model, layer_quantize_map = self._base.apply(model, layer_quantize_map)
        layers = {layer.name: layer for layer in model.layers}
        for name, meta in layer_quantize_map.items():
            if type(meta.get("quantize_config")) is not _NoOp:
                continue
            layer = layers.get(name)
            if given.get(name) is not None:
                meta["quantize_config"] = given[name]
            elif layer is not None and self._registry.supports(layer):
                restored = _weights_only(self._registry.get_quantize_config(layer))
                if restored is not None:
                    meta["quantize_config"] = restored
        return model, layer_quantize_map


class Scheme(quantize_scheme.QuantizeScheme):
    """The scheme `quantize` hands to ``tfmot.quantization.keras.quantize_apply``.

    Args:
      base: "int8" (tfmot's Default8BitQuantizeScheme) or
        "int8_prune_preserving" (Default8BitPrunePreserveQuantizeScheme).
      weight_quantizer: tfopt quantizer for Dense/Conv2D kernels, or None.
      int8_layers: names of layers that keep 8-bit weights.
    """

    def __init__(self, base=_lookup.INT8, weight_quantizer=None, int8_layers=()):
        self._base = (tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
                      if base == _lookup.INT8_PRUNE_PRESERVING
                      else default_8bit_quantize_scheme.Default8BitQuantizeScheme())
        self._registry = Registry(self._base.get_quantize_registry(), weight_quantizer,
                                  int8_layers)

    def get_layout_transformer(self):
        return LayoutTransform(self._base.get_layout_transformer(), self._registry)

    def get_quantize_registry(self):
        return self._registry
