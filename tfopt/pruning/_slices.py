"""Where channels sit in each layer's weights, and cutting them out.

A cut is a set of channel indices to remove from one weight along one axis:
{(attribute path, axis): indices}. Several channel groups may cut the same
weight (a convolution after a Concatenate reads the channels of many), so the
indices of all cuts are gathered first and removed together.
"""

import collections

import numpy as np
import tf_keras as keras

from tfopt.pruning import _registry

_L = keras.layers
_SEPARABLE = (_L.SeparableConv1D, _L.SeparableConv2D)
_TRANSPOSED = (_L.Conv1DTranspose, _L.Conv2DTranspose, _L.Conv3DTranspose)
_RNN = (_L.LSTM, _L.GRU, _L.SimpleRNN)


class Cuts:
    """Channel indices to remove, gathered per layer, weight and axis."""

    def __init__(self):
        self._removed = collections.defaultdict(lambda: collections.defaultdict(set))

    def add(self, layer_name, cuts):
        for path, axis, indices in cuts:
            self._removed[layer_name][(path, axis)].update(int(i) for i in indices)

    def __contains__(self, layer_name):
        return layer_name in self._removed

    def of(self, layer_name):
        """{(path, axis): sorted removed indices} of one layer."""
        return {key: np.array(sorted(indices), dtype=np.int64)
                for key, indices in self._removed.get(layer_name, {}).items()}


def outputs(layer, channels):
    """Where a layer's own output units are, for a unit-pruned layer (leader or member)."""
    spec = _registry.spec_for(layer)
    return [(t.path, t.unit_axis, channels) for t in spec.pruned + spec.unit_weights
            if t.unit_axis is not None]


def per_channel(layer, channels):
    """Where a BatchNormalization or depthwise layer keeps one value per channel."""
    cuts = [(t.path, t.unit_axis, channels)
            for t in _registry.per_channel_spec(layer).unit_weights]
    if isinstance(layer, _L.BatchNormalization):
        # Not masked during training, but one value per channel all the same.
        cuts += [("moving_mean", 0, channels), ("moving_variance", 0, channels)]
    return cuts


def inputs(layer, channels):
    """Where a consumer's weights meet its input channels."""
    if isinstance(layer, _L.Dense):
        return [("kernel", 0, channels)]
    if isinstance(layer, _TRANSPOSED):
        return [("kernel", -1, channels)]  # (..., filters, input channels)
    if isinstance(layer, _SEPARABLE):
        # Depthwise output channel c * multiplier + j comes from input channel c.
        multiplier = layer.depth_multiplier
        pointwise = (np.asarray(channels)[:, None] * multiplier + np.arange(multiplier))
        return [("depthwise_kernel", -2, channels), ("pointwise_kernel", -2, pointwise.ravel())]
    if isinstance(layer, _RNN):
        return [("cell.kernel", 0, channels)]
    if isinstance(layer, _L.Bidirectional):
        return [("forward_layer.cell.kernel", 0, channels),
                ("backward_layer.cell.kernel", 0, channels)]
    return [("kernel", -2, channels)]  # Conv1D/2D/3D


def absorbed(layer, weights, channels, values):
    """What constant input `values` on `channels` add to each output of a consumer
    (a Dense or a convolution of window 1), before its activation."""
    kernel = weights[_position(layer, "kernel")]
    rows = kernel.reshape(-1, kernel.shape[-2], kernel.shape[-1])[0]  # (inputs, filters)
    return np.asarray(values, kernel.dtype) @ rows[channels]


def cut(layer, weights, removed):
    """`weights` (in `layer.weights` order) without the `removed` indices."""
    weights = list(weights)
    for (path, axis), indices in removed.items():
        i = _position(layer, path)
        if i is not None:
            kept = np.setdiff1d(np.arange(weights[i].shape[axis]), indices)
            weights[i] = np.take(weights[i], kept, axis=axis)
    return weights


def add_to_bias(layer, config, weights, increment):
    """Adds `increment` to a layer's bias, creating the bias if the layer has none."""
    weights = list(weights)
    i = _position(layer, "bias")
    if i is None:
        config["use_bias"] = True
        weights.insert(_position(layer, "kernel") + 1, increment.astype(weights[0].dtype))
    else:
        weights[i] = weights[i] + increment
    return weights


def _position(layer, path):
    owner, attr = _registry.resolve(layer, path)
    variable = getattr(owner, attr, None)
    if variable is None:
        return None
    return next(i for i, v in enumerate(layer.weights) if v is variable)


def set_width(layer, config, removed):
    """Lowers the number of channels a layer outputs in its config by `removed`."""
    if isinstance(layer, _L.Reshape):
        *rest, last = config["target_shape"]
        if last != -1:  # -1 adapts by itself
            config["target_shape"] = (*rest, last - removed)
    elif isinstance(layer, _L.Dense):
        config["units"] -= removed
    elif isinstance(layer, _L.Embedding):
        config["output_dim"] -= removed
    else:
        config["filters"] -= removed
