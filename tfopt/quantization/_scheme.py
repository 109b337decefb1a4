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
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from tensorflow_model_optimization.python.core.quantization.keras import (
    quantize_layout_transform,
    quantize_registry,
    quantize_scheme,
)
from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve import (  # noqa: E501
    prune_preserve_quantize_registry,
)
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
    default_8bit_quantize_configs,
    default_8bit_quantize_registry,
    default_8bit_quantize_scheme,
    default_8bit_transforms,
)
from tensorflow_model_optimization.python.core.quantization.keras.graph_transformations import (
    model_transformer,
)

from tfopt.quantization import _layer_configs
from tfopt.quantization import _lookup
from tfopt.quantization import _prune_preserving
from tfopt.quantization import _tf_ops
from tfopt.quantization._configs import LayerQuantizeConfig

_L = keras.layers
_PrunePreservingRegistry = prune_preserve_quantize_registry.PrunePreserveQuantizeRegistry
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
        # tfmot's prune-preserving registry has no Conv1D, and its quantizer has
        # per-channel ranges for kernels of rank 2 and 4 only.
        self._conv1d_quantizer = (
            _prune_preserving.PrunePreservingQuantizer(per_channel=False)
            if isinstance(base, _PrunePreservingRegistry) else None)

    def supports(self, layer):
        if (type(layer) in OUTPUT_ONLY or _layer_configs.supports(layer)
                or _tf_ops.rewritable(layer)):
            return True
        # The prune-preserving registry claims every weightless layer but then
        # asks the default registry for its config; require both.
        return self._default.supports(layer) and self._base.supports(layer)

    def get_quantize_config(self, layer):
        if type(layer) in OUTPUT_ONLY:
            # The converter drops a multiply by one; a second range right after
            # the input's would then be left in float.
            return LayerQuantizeConfig(quantize_output=not _is_identity(layer))
        if _layer_configs.supports(layer):
            return _layer_configs.quantize_config(layer, self._conv1d_quantizer)
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


class _FloatInputQuantize(default_8bit_transforms.InputLayerQuantize):
    """tfmot's input quantization, skipped for integer inputs (token ids for an Embedding)."""

    def replacement(self, match_layer):
        if tf.as_dtype(match_layer.layer["config"]["dtype"]).is_integer:
            return match_layer
        return super().replacement(match_layer)


def _transforms():
    """tfmot's 8-bit layout transforms (Default8BitQuantizeLayoutTransform), in its order."""
    t = default_8bit_transforms
    return [
        _FloatInputQuantize(), t.SeparableConv1DQuantize(), t.SeparableConvQuantize(),
        t.Conv2DReshapeBatchNormReLUQuantize(), t.Conv2DReshapeBatchNormActivationQuantize(),
        t.Conv2DBatchNormReLUQuantize(), t.Conv2DBatchNormActivationQuantize(),
        t.Conv2DReshapeBatchNormQuantize(), t.Conv2DBatchNormQuantize(),
        t.ConcatTransform6Inputs(), t.ConcatTransform5Inputs(), t.ConcatTransform4Inputs(),
        t.ConcatTransform3Inputs(), t.ConcatTransform(), t.DenseBatchNormQuantize(),
        t.DenseBatchNormReLUQuantize(), t.DenseBatchNormActivationQuantize(),
        t.LayerReLUQuantize(), t.LayerReluActivationQuantize(),
    ]


class LayoutTransform(quantize_layout_transform.QuantizeLayoutTransform):
    """tfmot's layout transforms, then weight quantization restored where they drop it.

    Integer model inputs get no QuantizeLayer (tfmot would fake-quantize token
    ids, which fails: FakeQuant takes floats only), LSTM layers stay
    unwrapped for the converter (`_layer_configs.left_to_converter`), and
    recorded ``tf.*`` ops become Keras layers first (`_tf_ops`).
    """

    def __init__(self, registry):
        self._registry = registry

    def apply(self, model, layer_quantize_map):
        given = {name: meta.get("quantize_config") for name, meta in layer_quantize_map.items()}
        model = _tf_ops.replace_tf_ops(model)
        model, layer_quantize_map = model_transformer.ModelTransformer(
            model, _transforms(), set(layer_quantize_map), layer_quantize_map).transform()
        layers = {layer.name: layer for layer in model.layers}
        for name, layer in layers.items():
            if _layer_configs.left_to_converter(layer):
                layer_quantize_map.pop(name, None)  # stays unwrapped: see left_to_converter
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
        return LayoutTransform(self._registry)

    def get_quantize_registry(self):
        return self._registry
