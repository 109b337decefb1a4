"""Inline activations TFLite cannot fuse, moved into Activation layers of their own.

A Conv2D or Dense with ``activation="swish"`` (EfficientNet's squeeze-excite
convolutions) computes the activation inside the layer. tfmot fake-quantizes
swish and GELU only after the activation, so the convolution's own output has
no range, and the TFLite converter keeps that convolution in float: no
full-int8 file. TFLite fuses only ReLU, ReLU6 and tanh into a convolution.
Split into the layer with a linear activation (its output quantized, as tfmot
does for every linear Conv2D/Dense) and an ``Activation`` layer named
``<name>_activation``, each op gets a range and converts to int8. Layers whose
activation TFLite fuses, or tfmot quantizes on both sides (sigmoid, softmax),
are left alone, so their files stay tfmot's.
"""

import tf_keras as keras

from tfopt import _clone

_L = keras.layers
_SPLIT = (_L.Conv1D, _L.Conv2D, _L.DepthwiseConv2D, _L.Dense)
# Left inline: the converter fuses the first four into the op, and tfmot quantizes
# sigmoid and softmax on both sides, so their files stay tfmot's.
_KEPT = frozenset({"linear", "relu", "relu6", "tanh", "sigmoid", "softmax"})


def _activation_name(layer):
    return getattr(layer.activation, "__name__", None)


def _splits(layer):
    return type(layer) in _SPLIT and _activation_name(layer) not in _KEPT


def split_activations(model, names):
    """Moves the unfusable inline activations of the layers named in `names` out.

    Args:
      model: a Functional or Sequential model without nested models.
      names: names of the layers that will be quantized.

    Returns:
      ``(model, added)``: the model (the input one if nothing changed) and the
      names of the ``<name>_activation`` layers added.
    """
    split = {layer.name: layer for layer in model.layers
             if layer.name in names and _splits(layer)}
    if not split:
        return model, []

    def replace(layer):
        if layer.name not in split:
            return None
        config = {**layer.get_config(), "activation": "linear"}
        return [type(layer).from_config(config),
                _L.Activation(layer.activation, name=f"{layer.name}_activation")]

    rebuilt = _clone.flatten(model, replace)
    for name, layer in split.items():
        rebuilt.get_layer(name).set_weights(layer.get_weights())
    return rebuilt, [f"{name}_activation" for name in split]
