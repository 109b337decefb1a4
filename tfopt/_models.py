"""Checks shared by every tfopt entry point that takes a Keras model."""

import tf_keras as keras

from tfopt import _counterparts
from tfopt import _keras2  # noqa: F401,I001  (before tfmot: it must not rebind tf.keras)
from tensorflow_model_optimization.python.core.quantization.keras import quantize_layer
from tensorflow_model_optimization.python.core.quantization.keras import quantize_wrapper
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper


def validate_tf_keras_model(model, action):
    """Raises ValueError unless `model` is a tf_keras (Keras 2) Model.

    A Keras 3 model (``import keras``, or ``tf.keras`` unless
    TF_USE_LEGACY_KERAS=1 was set) gets the name of the function in
    `tfopt.keras3` that takes it.
    """
    if isinstance(model, keras.Model):
        return
    kind = type(model).__module__ + "." + type(model).__name__
    hint = ""
    if type(model).__module__.startswith("keras."):
        hint = (f" It looks like a Keras 3 object: {_counterparts.for_keras3(action)} To stay on "
                "Keras 2, build the model with `import tf_keras as keras`.")
    raise ValueError(f"{action} needs a tf_keras Model, got {kind}.{hint}")


_WHEN_QUANTIZATION_AWARE = {
    "prune": "Prune the float model first, strip it, then quantize the stripped model with "
             "scheme='int8_prune_preserving', which keeps the pruned weights at zero.",
    "strip": "Only pruned models need strip: prune the float model first, strip it, then "
             "quantize the stripped model with scheme='int8_prune_preserving'.",
    "shrink": "Prune the float model with structure='channels', shrink it, then quantize the "
              "shrunk model.",
    "make_student": "Pass the float model it was quantized from as the teacher.",
    "quantize": "It is quantized already: train it with fit and export it with "
                "tfopt.export.tflite(model, path, mode='int8'). To quantize with other "
                "settings, start again from the float model.",
}


def _quantization_aware(layer):
    return isinstance(layer, (quantize_wrapper.QuantizeWrapper, quantize_layer.QuantizeLayer))


def _pruning(layer):
    # By name: tfopt.pruning imports this module, so it cannot be imported here.
    return isinstance(layer, pruning_wrapper.PruneLowMagnitude) or any(
        cls.__name__ == "PruneWrapper" and cls.__module__.startswith("tfopt.pruning")
        for cls in type(layer).__mro__)


def _layers_where(model, predicate):
    """Names of the layers that satisfy `predicate`, nested models entered, in order."""
    names = []
    for layer in model.layers:
        if predicate(layer):
            names.append(layer.name)
        elif isinstance(layer, keras.Model):
            names.extend(_layers_where(layer, predicate))
    return names


def validate_float_model(model, action):
    """Raises ValueError if `action` cannot take what `model` has become.

    Transforms rebuild a model from its layers' configs; a quantization-aware
    model's tfmot wrappers and quantizers do not rebuild that way (Keras fails
    deep inside with "Unknown None: 'AllValuesQuantizer'"), and quantize would
    list a pruned model's PruneWrappers as unsupported layers. Both get a
    sentence saying what to do instead. Actions not named here (reports,
    FLOP counts) read any model.
    """
    if action in _WHEN_QUANTIZATION_AWARE:
        quantized = _layers_where(model, _quantization_aware)
        if quantized:
            raise ValueError(
                f"{action} works on float models; {model.name!r} is quantization-aware (tfmot "
                f"quantization layers {_listed(quantized)}). {_WHEN_QUANTIZATION_AWARE[action]}")
    if action == "quantize":
        pruned = _layers_where(model, _pruning)
        if pruned:
            raise ValueError(
                f"quantize needs a stripped model; {model.name!r} still holds pruning wrappers "
                f"{_listed(pruned)}. Strip first: tfopt.pruning.strip(model) (for tfmot's "
                "prune_low_magnitude: tfmot.sparsity.keras.strip_pruning(model)), then "
                "quantize(stripped, scheme='int8_prune_preserving') keeps the zeros.")


def _listed(names):
    return f"{names[:3]}{' and more' if len(names) > 3 else ''}"
