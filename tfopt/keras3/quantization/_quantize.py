"""quantize(): a Keras 3 model -> a quantization-aware (QAT) copy, to train with fit."""

import keras
import numpy as np

from tfopt.keras3 import _clone
from tfopt.keras3 import _models
from tfopt.keras3.quantization import _plan
from tfopt.keras3.quantization import _quantizers
from tfopt.keras3.quantization import _ranges

INT8 = "int8"
INT8_PRUNE_PRESERVING = "int8_prune_preserving"
SCHEMES = (INT8, INT8_PRUNE_PRESERVING, "binary", "ternary")


def quantize(model, scheme="int8", layers=None, int8_layers="first_last",
             representative_data=None):
    """Returns a quantization-aware copy of a Keras 3 `model`, to train with `fit`.

    Each supported layer becomes its `Quant*` twin (`QuantDense`,
    `QuantConv2D`, `QuantAdd`, ...), nested models included: weights are
    fake-quantized in the forward pass (8-bit per-channel for convolutions,
    per-tensor for Dense/EinsumDense) and outputs go through an 8-bit fake
    quant over a moving range, trained through straight-through gradients. A
    BatchNormalization right after a Dense/Conv/DepthwiseConv with a linear
    activation is folded into its kernel and bias (inference form: moving
    statistics frozen, gamma and beta trained) and replaced by an Identity
    layer of the same name. Each float model input gets a `FakeQuant` layer.
    The result converts with ``tfopt.export.tflite(model, path, mode="int8")``
    to a fully-int8 file without representative data. The input model is not
    modified.

    Layers nothing can quantize (and activations TFLite has no int8 kernel
    for) raise one ValueError naming them all, before anything is built.

    Schemes:
      "int8": 8-bit weights and activations.
      "int8_prune_preserving": the same, and weights that are exactly zero
        now (a stripped pruned model) stay zero through training and in the
        file.
      "binary" / "ternary" / a quantizer such as ``FixedPoint(4)``: kernels
        take that quantizer's levels (stored as int8 in the file), except the
        `int8_layers`; activations stay 8-bit.

    Args:
      model: a built Sequential or Functional Keras 3 model.
      scheme: "int8", "int8_prune_preserving", "binary", "ternary", or a
        `tfopt.keras3.quantization` weight quantizer. Defaults to "int8".
      layers: which layers to quantize: None (all), layer names, or a
        predicate ``layer -> bool``; the others stay float (and so does the
        TFLite file around them). Defaults to None.
      int8_layers: for low-bit schemes, the weighted layers that keep 8-bit
        weights: "first_last", None, or a list of names. Defaults to
        "first_last".
      representative_data: typical inputs (an array, or a list/dict of arrays
        for several inputs). If given, every range starts at the range seen
        on them (up to 1,000 examples); otherwise the first training batch
        sets them. Defaults to None.

    Returns:
      A new Keras 3 model with `Quant*` layers (not compiled).

    Example:
      >>> q = quantize(model, "int8")
      >>> q.compile("adam", "sparse_categorical_crossentropy")
      >>> q.fit(x, y, epochs=1)
      >>> tfopt.export.tflite(q, "model.tflite", mode="int8")
    """
    _models.validate_graph_model(model, "quantize")
    _plan.validate_not_wrapped(model)
    weight_quantizer, preserve_zeros = resolve_scheme(scheme)
    selected, _ = _clone.select_layers(model, layers)
    plan = _plan.Plan(model, selected)
    plan.validate()
    int8_names = _int8_names(plan, int8_layers, weight_quantizer)

    def replace(layer):
        return plan.replacement(layer, _quantizers.Int8() if layer.name in int8_names
                                else weight_quantizer, preserve_zeros)

    quantized = add_input_quantizers(_clone.rebuild(model, replace))
    if representative_data is not None:
        calibrate(quantized, representative_data)
    return quantized


def resolve_scheme(scheme):
    """``(weight_quantizer, preserve_zeros)`` for a `quantize` scheme."""
    if isinstance(scheme, _quantizers.Quantizer):
        return scheme, False
    if isinstance(scheme, str):
        name = scheme.lower()
        if name in (INT8, INT8_PRUNE_PRESERVING):
            return _quantizers.Int8(), name == INT8_PRUNE_PRESERVING
        if name in ("binary", "ternary"):
            return _quantizers.get(name), False
    raise ValueError(
        f"Unknown quantization scheme {scheme!r}. Use one of {list(SCHEMES)}, or a weight "
        "quantizer such as tfopt.keras3.quantization.FixedPoint(4), Binary() or Ternary().")


def _int8_names(plan, int8_layers, weight_quantizer):
    if isinstance(weight_quantizer, _quantizers.Int8) or int8_layers is None:
        return set()
    weighted = plan.weighted_names()
    if int8_layers == "first_last":
        return {weighted[0], weighted[-1]} if weighted else set()
    if isinstance(int8_layers, (list, tuple, set)) and all(
            isinstance(n, str) for n in int8_layers):
        unknown = sorted(set(int8_layers) - set(weighted))
        if unknown:
            raise ValueError(f"int8_layers names {unknown}, which are not quantized layers with "
                             f"weights; those are {weighted}.")
        return set(int8_layers)
    raise ValueError(f"int8_layers must be 'first_last', None or a list of layer names, got "
                     f"{int8_layers!r}.")


def add_input_quantizers(model):
    """`model` with a `FakeQuant` layer after each float input (the file's int8 input range)."""
    if isinstance(model, keras.Sequential):
        source = model.inputs[0]
        if not _is_float(source):
            return model
        return keras.Sequential(
            [keras.Input(batch_shape=source.shape, dtype=source.dtype, name=source.name),
             _ranges.FakeQuant(name=f"{source.name}_quantize"), *model.layers],
            name=model.name)
    quantizers = {}

    def quantize_inputs(tensor):
        history = getattr(tensor, "_keras_history", None)
        if history is None or not isinstance(history.operation, keras.layers.InputLayer) \
                or not _is_float(tensor):
            return tensor
        if id(tensor) not in quantizers:
            quantizers[id(tensor)] = _ranges.FakeQuant(name=f"{tensor.name}_quantize")(tensor)
        return quantizers[id(tensor)]

    def call(layer, *args, **kwargs):
        args, kwargs = keras.tree.map_structure(quantize_inputs, (args, kwargs))
        return layer(*args, **kwargs)

    # The layers are the model's own (already built, weights set): only the calls change.
    return keras.models.clone_model(model, clone_function=lambda layer: layer,
                                    call_function=call)


def _is_float(tensor):
    return np.dtype(keras.backend.standardize_dtype(tensor.dtype)).kind == "f"


_CALIBRATION_EXAMPLES = 1000
_CALIBRATION_BATCH = 100


def calibrate(model, data):
    """Moves every range of a quantized model to the ranges seen on `data`, eagerly.

    Args:
      model: a model returned by `quantize`.
      data: an array, or a list/dict of arrays, one per model input; the
        first 1,000 examples are read.
    """
    arrays = keras.tree.flatten(data)
    if not arrays or not all(hasattr(a, "shape") and len(a.shape) for a in arrays):
        raise ValueError("representative_data must be an array, or a list/dict of arrays (one "
                         f"per model input), got {type(data).__name__}.")
    count = min(len(arrays[0]), _CALIBRATION_EXAMPLES)
    # Every tfopt layer with ranges (sublayers too: attention projections, LSTM cells).
    quantizers = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
                  if hasattr(layer, "calibrating")]
    for layer in quantizers:
        layer.calibrating = True
    try:
        for start in range(0, count, _CALIBRATION_BATCH):
            batch = keras.tree.map_structure(
                lambda a: np.asarray(a[start:start + _CALIBRATION_BATCH]), data)
            model(batch, training=False)
    finally:
        for layer in quantizers:
            layer.calibrating = False
