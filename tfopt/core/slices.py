"""Where channels sit in each layer type's weights, and cutting them out.

A cut is a set of channel indices to remove from one weight along one axis:
{(attribute path, axis): indices}. Several channel groups may cut the same
weight (a convolution after a Concatenate reads the channels of many), so the
indices of all cuts are gathered first (`Cuts`) and removed together.

Layers are named by their built-in Keras class name ("Dense") and weights by
attribute path ("kernel", "cell.kernel"), as in `tfopt.core.layer_specs`.
Where a weight sits in a layer's weight list is the Keras path's business:
the functions that touch weight lists take ``position(path) -> index | None``
(None: the layer has no such weight, e.g. no bias).
"""

import collections

import numpy as np

from tfopt.core import layer_specs

_TRANSPOSED = layer_specs.TRANSPOSED
_SEPARABLE = layer_specs.SEPARABLE
_RNN = layer_specs.RNN


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


def outputs(spec, channels):
    """Where a unit-pruned layer (leader or member) keeps its own output units.

    Args:
      spec: the layer's `LayerSpec`.
      channels: indices of the removed units.
    """
    return [(t.path, t.unit_axis, channels) for t in spec.pruned + spec.unit_weights
            if t.unit_axis is not None]


def per_channel(class_name, spec, channels):
    """Where a BatchNormalization or depthwise layer keeps one value per channel.

    Args:
      class_name: the layer's built-in class name.
      spec: its per-channel `LayerSpec` (`layer_specs.per_channel_spec`).
      channels: indices of the removed channels.
    """
    cuts = [(t.path, t.unit_axis, channels) for t in spec.unit_weights]
    if class_name == "BatchNormalization":
        # Not masked during training, but one value per channel all the same.
        cuts += [("moving_mean", 0, channels), ("moving_variance", 0, channels)]
    return cuts


def inputs(class_name, channels, depth_multiplier=1):
    """Where a consumer's weights meet its input channels.

    Args:
      class_name: the consumer's built-in class name.
      channels: indices of the removed input channels.
      depth_multiplier: a SeparableConv's. Defaults to 1.
    """
    if class_name == "Dense":
        return [("kernel", 0, channels)]
    if class_name in _TRANSPOSED:
        return [("kernel", -1, channels)]  # (..., filters, input channels)
    if class_name in _SEPARABLE:
        # Depthwise output channel c * multiplier + j comes from input channel c.
        pointwise = np.asarray(channels)[:, None] * depth_multiplier + np.arange(depth_multiplier)
        return [("depthwise_kernel", -2, channels), ("pointwise_kernel", -2, pointwise.ravel())]
    if class_name in _RNN:
        return [("cell.kernel", 0, channels)]
    if class_name == "Bidirectional":
        return [("forward_layer.cell.kernel", 0, channels),
                ("backward_layer.cell.kernel", 0, channels)]
    return [("kernel", -2, channels)]  # Conv1D/2D/3D


def absorbed(kernel, channels, values):
    """What constant input `values` on `channels` add to each output of a consumer
    (a Dense or a convolution of window 1, with this `kernel`), before its activation."""
    kernel = np.asarray(kernel)
    rows = kernel.reshape(-1, kernel.shape[-2], kernel.shape[-1])[0]  # (inputs, filters)
    return np.asarray(values, kernel.dtype) @ rows[channels]


def cut(weights, removed, position):
    """`weights` without the `removed` indices ({(path, axis): indices})."""
    weights = list(weights)
    for (path, axis), indices in removed.items():
        i = position(path)
        if i is not None:
            kept = np.setdiff1d(np.arange(weights[i].shape[axis]), indices)
            weights[i] = np.take(weights[i], kept, axis=axis)
    return weights


def add_to_bias(config, weights, increment, position):
    """Adds `increment` to a layer's bias, creating the bias (after the kernel) if it has none."""
    weights = list(weights)
    i = position("bias")
    if i is None:
        config["use_bias"] = True
        weights.insert(position("kernel") + 1, np.asarray(increment).astype(weights[0].dtype))
    else:
        weights[i] = weights[i] + increment
    return weights


def set_width(class_name, config, removed):
    """Lowers the number of channels a layer outputs in its `config` by `removed`."""
    if class_name == "Reshape":
        *rest, last = config["target_shape"]
        if last != -1:  # -1 adapts by itself
            config["target_shape"] = (*rest, last - removed)
    elif class_name == "Dense":
        config["units"] -= removed
    elif class_name == "Embedding":
        config["output_dim"] -= removed
    else:
        config["filters"] -= removed


def shrunk(class_name, config, weights, position, removed, width=0, increment=None):
    """A layer's config (changed in place) and weights once its channels are cut.

    Args:
      class_name: the layer's built-in class name.
      config: its config; its width is lowered by `width`, and `use_bias` set
        when a bias must be created for `increment`.
      weights: its weights, masks applied, in its weight order.
      position: ``position(path) -> index in weights | None``.
      removed: {(path, axis): indices} (`Cuts.of`).
      width: how many output channels it loses. Defaults to 0.
      increment: what removed constant input channels added to its outputs
        (indexed by its outputs before its own units are cut), or None.
        Defaults to None.

    Returns:
      The new weights.
    """
    if width:
        set_width(class_name, config, width)
    weights = cut(weights, removed, position)
    if increment is not None:
        own = removed.get(("kernel", -1), [])  # its own units, if cut too
        weights = add_to_bias(config, weights, np.delete(increment, own), position)
    return weights
