"""Rescaling, Normalization and lone BatchNormalization, reshaped for int8 files.

All three compute ``x * scale + offset`` in one layer (BatchNormalization in
inference). Quantization-aware training can fake-quantize the layer's output
but not the tensor between the multiply and the add, and without a range for
it the TFLite converter leaves the layer in float (measured: MUL and ADD, or
FusedBatchNormV3, with float tensors, so no full-int8 file). Split into
``Rescaling(scale)`` and ``Rescaling(1, offset)``, each with a quantized
output, both ops convert to int8 (the converter quantizes their constants
itself). The first part keeps the layer's name; the second is named
``<name>_offset``.

A BatchNormalization right after a linear Conv2D, DepthwiseConv2D or Dense
is left alone: tfmot's transforms fold it into that layer. Any other one is
frozen: its moving statistics, gamma and beta become the two Rescaling
layers' constants and no longer change while the QAT model trains.
"""

import numpy as np
import tf_keras as keras

from tfopt import _clone

_L = keras.layers


def _constant(value):
    array = np.asarray(value, dtype="float32")
    if array.size and np.all(array == array.flat[0]):
        return float(array.flat[0])
    return array.tolist()


def _absorbed(layer):
    """Whether tfmot folds this BatchNormalization into the layer before it."""
    producers = layer._inbound_nodes[0].inbound_layers if layer._inbound_nodes else []
    producer = producers[0] if isinstance(producers, list) and len(producers) == 1 else producers
    # tfmot splits a SeparableConv2D into depthwise + 1x1 Conv2D, then folds the BN.
    return (type(producer) in (_L.Conv2D, _L.DepthwiseConv2D, _L.SeparableConv2D, _L.Dense)
            and getattr(producer.activation, "__name__", None) == "linear")


def _splits(layer):
    if type(layer) is _L.BatchNormalization:
        axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        return len(axes) == 1 and not _absorbed(layer)
    return type(layer) in (_L.Rescaling, _L.Normalization)


def _batch_norm_scale_and_offset(layer):
    rank = layer.input.shape.rank
    shape = [1] * (rank - 1)
    axis = layer.axis[0] if isinstance(layer.axis, (list, tuple)) else layer.axis
    shape[(axis % rank) - 1] = -1
    scale = 1.0 / np.sqrt(layer.moving_variance.numpy() + layer.epsilon)
    if layer.scale:
        scale = scale * layer.gamma.numpy()
    offset = -layer.moving_mean.numpy() * scale
    if layer.center:
        offset = offset + layer.beta.numpy()
    return _constant(scale.reshape(shape)), _constant(offset.reshape(shape))


def _scale_and_offset(layer):
    if type(layer) is _L.Rescaling:
        return layer.scale, layer.offset
    if type(layer) is _L.BatchNormalization:
        return _batch_norm_scale_and_offset(layer)
    mean = np.asarray(layer.mean, dtype="float32")
    std = np.maximum(np.sqrt(np.asarray(layer.variance, dtype="float32")),
                     keras.backend.epsilon())
    if layer.invert:
        return _constant(std), _constant(mean)
    return _constant(1.0 / std), _constant(-mean / std)


def _has_offset(offset):
    return bool(np.any(np.asarray(offset, dtype="float32") != 0))


def _replacement(layer):
    """The Rescaling layers to call in place of `layer`, or None to keep it."""
    if not _splits(layer):
        return None
    scale, offset = _scale_and_offset(layer)
    if not _has_offset(offset):
        return None if type(layer) is _L.Rescaling else [_L.Rescaling(scale, name=layer.name)]
    if not np.any(np.asarray(scale, dtype="float32") != 1):  # a bare add: nothing to split
        return None if type(layer) is _L.Rescaling else [
            _L.Rescaling(1.0, offset=offset, name=layer.name)]
    return [_L.Rescaling(scale, name=layer.name),
            _L.Rescaling(1.0, offset=offset, name=f"{layer.name}_offset")]


def split_affine(model, names):
    """Replaces the affine layers named in `names` by Rescaling pairs.

    The two layers are called one after the other in the rebuilt graph, not
    wrapped in a nested model: a nested Sequential with its own Input makes
    tf_keras' clone of a Functional model loop forever.

    Args:
      model: a Functional or Sequential model without nested models.
      names: names of the layers that will be quantized.

    Returns:
      ``(model, added)``: the model (the input one if nothing changed) and the
      names of the ``<name>_offset`` layers added.
    """
    replacements = {layer.name: _replacement(layer) for layer in model.layers
                    if layer.name in names}
    replacements = {name: parts for name, parts in replacements.items() if parts is not None}
    if not replacements:
        return model, []
    added = [parts[1].name for parts in replacements.values() if len(parts) > 1]
    return _clone.flatten(model, lambda layer: replacements.get(layer.name)), added
