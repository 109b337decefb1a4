"""quantize(): a Keras model -> a quantization-aware (QAT) model."""

import tensorflow_model_optimization as tfmot
import tf_keras as keras
from absl import logging
from tensorflow_model_optimization.python.core.quantization.keras import (
    quantize_config as tfmot_quantize_config,
)

from tfopt import _clone
from tfopt import _data
from tfopt.quantization import _activations
from tfopt.quantization import _affine
from tfopt.quantization import _calibrate
from tfopt.quantization import _layer_configs
from tfopt.quantization import _lookup
from tfopt.quantization import _scheme
from tfopt.quantization import _tf_ops

_tfmot_q = tfmot.quantization.keras

# What tfmot's QuantizeAwareActivation and its Activation-layer config accept.
_ACTIVATIONS = frozenset({"linear", "relu", "swish", "gelu", "softmax", "sigmoid", "tanh"})
_ACTIVATION_LAYER_ACTIVATIONS = _ACTIVATIONS | {"relu6"}


def quantize(model, scheme="int8", layers=None, int8_layers="first_last",
             quantize_configs=None, representative_data=None):
    """Returns a quantization-aware copy of `model`, to train with `fit`.

    Built on tfmot's QAT: every quantized layer is wrapped in tfmot's
    ``QuantizeWrapperV2``; weights and activations are fake-quantized in the
    forward pass and trained through straight-through gradients. Nested
    Sequential/Functional models are inlined first (layer names and weights
    kept), so the result is one Functional model. The input model is not
    modified.

    Schemes:
      "int8": tfmot's default 8-bit scheme (per-channel symmetric conv
        weights, per-tensor Dense weights, asymmetric 8-bit activations).
      "int8_prune_preserving": tfmot's prune-preserving 8-bit scheme: weights
        that are exactly zero (e.g. after ``tfopt.pruning.strip``) stay zero.
      "binary" / "ternary" / a quantizer such as ``FixedPoint(4)``: Dense and
        Conv2D kernels use that quantizer (activations stay 8-bit), except the
        `int8_layers`, which keep tfmot's 8-bit weights.

    Beyond tfmot's registry, tfopt quantizes Rescaling, Normalization and
    BatchNormalization layers that tfmot cannot fold into a preceding linear
    convolution: each becomes two Rescaling layers (multiply, then add; the
    second named ``<name>_offset``) with quantized outputs, so the model still
    converts to a full-int8 TFLite file. Such a BatchNormalization is frozen at
    its current statistics, gamma and beta. Layers nothing can quantize raise
    one ValueError naming them all, before tfmot is called.

    Args:
      model: a built Sequential or Functional tf_keras model.
      scheme: "int8", "int8_prune_preserving", "binary", "ternary", or a tfopt
        weight quantizer instance. Defaults to "int8".
      layers: which layers to quantize: None (all), layer names, or a
        predicate ``layer -> bool``; the others stay float. Defaults to None.
      int8_layers: for low-bit schemes, the Dense/Conv2D layers that keep 8-bit
        weights: "first_last" (the first and the last such layer), None, or a
        list of names. Defaults to "first_last".
      quantize_configs: ``{layer_name: QuantizeConfig}`` for layers to quantize
        your way, e.g. a `LayerQuantizeConfig` or any
        ``tfmot.quantization.keras.QuantizeConfig`` (register custom classes
        with ``keras.utils.register_keras_serializable``). Defaults to None.
      representative_data: a few hundred typical inputs (array, list/dict of
        arrays, or a ``tf.data.Dataset`` or other iterable of batches, read up
        to 1,000 examples), checked against the model's inputs: shapes, dtypes,
        and finite values (one NaN would make every range NaN). If given, every
        activation range starts at the range seen on them, so the QAT model
        starts with the predictions of post-training quantization; without it
        tfmot's starting ranges ([-6, 6], input [0, 0]) apply until training
        has moved them. Defaults to None.

    Returns:
      A new Functional (or Sequential) model with tfmot QuantizeWrapperV2 layers.

    Example:
      >>> q = quantize(model, "binary", representative_data=x[:256])
      >>> q.compile("adam", "sparse_categorical_crossentropy")
      >>> q.fit(x, y, epochs=2)
    """
    _clone.validate_model(model, "quantize")
    if representative_data is not None:
        representative_data = _data.validate_examples(
            representative_data, _data.input_specs(model), "representative_data")
    base, weight_quantizer = _lookup.resolve_scheme(scheme)
    flat = _clone.flatten(model) if _clone.has_nested_models(model) else model
    # Recorded tf.* ops (x * c, tf.add, ...) become Keras layers of the same name:
    # tfmot cannot wrap TFOpLambda layers.
    flat = _tf_ops.replace_tf_ops(flat)
    configs = _validate_configs(flat, quantize_configs)
    selected, _ = _clone.select_layers(flat, layers)
    chosen = {layer.name for layer in flat.layers
              if not isinstance(layer, keras.layers.InputLayer) and selected(layer)}
    tfmot_scheme = _scheme.Scheme(
        base, weight_quantizer, _int8_names(flat, chosen, configs, int8_layers, weight_quantizer))
    _check_quantizable(flat, chosen, configs, tfmot_scheme.get_quantize_registry())
    if not chosen:
        raise ValueError(f"quantize found no layer to quantize in {flat.name!r} with "
                         f"layers={layers!r}.")
    flat, added = _affine.split_affine(flat, chosen - set(configs))
    chosen |= set(added)
    flat, added = _activations.split_activations(flat, chosen - set(configs))
    chosen |= set(added)
    configs = {**_layer_configs.same_scale_configs(flat, chosen - set(configs)), **configs}

    def annotate(layer):
        if layer.name not in chosen:
            return None
        copy = _clone.copy_layer(layer)
        return (_tfmot_q.quantize_annotate_layer(copy, configs.get(layer.name)), copy,
                layer.get_weights())

    annotated = _clone.rebuild(flat, annotate)
    # tfmot rebuilds the model from its config: every layer class must resolve by name,
    # also unregistered ones inside tf_keras (ConvNeXt's LayerScale) and your own.
    own = {type(layer).__name__: type(layer) for layer in flat.layers}
    with _tfmot_q.quantize_scope(own):
        quantized = _tfmot_q.quantize_apply(annotated, tfmot_scheme)
    _calibrate.init_weight_ranges(quantized)
    if representative_data is not None:
        _calibrate.calibrate(quantized, representative_data)
    return quantized


def _validate_configs(model, quantize_configs):
    if quantize_configs is not None and not isinstance(quantize_configs, dict):
        raise TypeError(f"quantize_configs must be a dict {{layer_name: QuantizeConfig}}, got "
                        f"{type(quantize_configs).__name__}: {quantize_configs!r}.")
    configs = dict(quantize_configs or {})
    known = {layer.name for layer in model.layers}
    unknown = sorted(set(configs) - known)
    if unknown:
        raise ValueError(f"quantize_configs names layers {unknown} that {model.name!r} does not "
                         f"have. Its layers: {sorted(known)}.")
    for name, config in configs.items():
        if not isinstance(config, tfmot_quantize_config.QuantizeConfig):
            raise ValueError(
                f"quantize_configs[{name!r}] is {config!r}; it must be a "
                "tfmot.quantization.keras.QuantizeConfig, e.g. "
                "tfopt.quantization.LayerQuantizeConfig(['kernel'], ['activation'])."
            )
    return configs


def _int8_names(model, chosen, configs, int8_layers, weight_quantizer):
    eligible = [layer.name for layer in model.layers if _scheme.takes_low_bit(layer)
                and layer.name in chosen and layer.name not in configs]
    if int8_layers is None:
        return set()
    if isinstance(int8_layers, str) and int8_layers == "first_last":
        names = set(eligible[:1] + eligible[-1:])
        if weight_quantizer is not None and len(eligible) <= 2:
            logging.warning("tfopt.quantization: every Dense/Conv2D layer (%s) is first or "
                            "last, so all keep 8-bit weights; pass int8_layers=None to "
                            "quantize them with %r.", eligible, weight_quantizer)
        return names
    if (isinstance(int8_layers, str) or not isinstance(int8_layers, (list, tuple, set))
            or not all(isinstance(n, str) for n in int8_layers)):
        raise ValueError(f"int8_layers must be 'first_last', None or a list of layer names, "
                         f"got {int8_layers!r}.")
    unknown = sorted(set(int8_layers) - {layer.name for layer in model.layers})
    if unknown:
        raise ValueError(f"int8_layers names layers {unknown} that {model.name!r} does not "
                         f"have. Dense/Conv2D layers it has: {eligible}.")
    return set(int8_layers)


def _activation_name(activation):
    return getattr(activation, "__name__", type(activation).__name__)


def _problem(layer, registry):
    """Why `quantize` cannot quantize `layer` (int8 in a TFLite file), or None."""
    if type(layer) is keras.layers.SeparableConv2D:
        return None  # tfmot's layout transform splits it into layers its registry quantizes
    if type(layer) is keras.layers.SeparableConv1D:
        return ("tfmot's SeparableConv1D transform inserts Lambda layers that tf_keras 2.21 "
                "refuses to rebuild (safe_mode); use a SeparableConv2D on a (length, 1) axis")
    if _layer_configs.converter_problem(layer):
        return _layer_configs.converter_problem(layer)
    if _layer_configs.left_to_converter(layer):
        return None
    if isinstance(layer, keras.layers.Lambda):
        return ("a Lambda layer runs Python code tfmot cannot see into; rebuild it from "
                "Keras layers, or pass a QuantizeConfig for it")
    if type(layer).__name__ in ("TFOpLambda", "SlicingOpLambda") and not registry.supports(layer):
        return (f"tfopt quantizes recorded tf.* ops only as x+y, x-y, x*y, max, min of two "
                f"tensors or x+c, x-c, x*c, x/c with a number c (this is "
                f"tf.{layer.get_config().get('function')}); build it from Keras layers")
    if not registry.supports(layer):
        return "neither tfmot nor tfopt has a QuantizeConfig for this layer type"
    if isinstance(layer, keras.layers.Activation):
        allowed = _ACTIVATION_LAYER_ACTIVATIONS
    elif hasattr(layer, "activation") and not _layer_configs.supports(layer):
        allowed = _ACTIVATIONS
    elif type(layer) is keras.layers.Conv1D:
        allowed = _ACTIVATIONS
    else:
        return None
    name = _activation_name(layer.activation)
    if name not in allowed:
        return f"activation {name!r} cannot be quantized by tfmot (allowed: {sorted(allowed)})"
    return None


def _unnamed_inputs(layer):
    """How many positional call arguments of `layer` have no parameter name.

    Cloning rebuilds a Functional model from its config, which stores every
    positional argument after the first under its parameter name (the second
    input of ``MultiHeadAttention()(q, v)`` becomes ``value=v``), and tfmot's
    QuantizeWrapper passes keyword arguments on. Only arguments that land in a
    ``*args`` have no name: the config drops them.
    """
    named = len(layer._call_spec.arg_names)
    return max((len(node.call_args) - named for node in layer._inbound_nodes), default=0)


def _check_quantizable(model, chosen, configs, registry):
    problems = []
    for layer in model.layers:
        if layer.name not in chosen:
            continue
        reason = None if layer.name in configs else _problem(layer, registry)
        if reason is None and _unnamed_inputs(layer) > 0:
            reason = (f"it is called with {_unnamed_inputs(layer)} positional argument(s) "
                      "its call signature does not name, which a clone drops")
        if reason:
            problems.append((layer, reason))
    if not problems:
        return
    lines = "\n".join(f"  - {layer.name!r} ({type(layer).__name__}): {reason}"
                      for layer, reason in problems)
    names = [layer.name for layer, _ in problems]
    raise ValueError(
        f"quantize cannot quantize {len(problems)} layer(s) of {model.name!r}:\n{lines}\n"
        f"Either leave them float with layers=[...] naming the other layers (or a "
        f"predicate such as lambda layer: layer.name not in {names}), or pass a "
        f"tfmot.quantization.keras.QuantizeConfig for each with quantize_configs="
        f"{{{names[0]!r}: config, ...}}; tfopt.quantization.LayerQuantizeConfig("
        f"quantize_output=True) quantizes just the output."
    )
