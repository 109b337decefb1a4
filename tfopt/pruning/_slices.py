"""The tf-keras side of `tfopt.core.slices`: a layer's class name and weight positions.

Which channels a cut removes, and from which weight, is `tfopt.core.slices`';
this module names a tf-keras layer's class and finds where a weight path sits
in its `weights` list.
"""

from tfopt.core import slices as _core
from tfopt.pruning import _registry

Cuts = _core.Cuts


def outputs(layer, channels):
    """Where a layer's own output units are, for a unit-pruned layer (leader or member)."""
    return _core.outputs(_registry.spec_for(layer), channels)


def per_channel(layer, channels):
    """Where a BatchNormalization or depthwise layer keeps one value per channel."""
    return _core.per_channel(_registry.class_name(layer), _registry.per_channel_spec(layer),
                             channels)


def inputs(layer, channels):
    """Where a consumer's weights meet its input channels."""
    return _core.inputs(_registry.class_name(layer), channels,
                        getattr(layer, "depth_multiplier", 1))


def absorbed(layer, weights, channels, values):
    """What constant input `values` on `channels` add to each output of a consumer
    (a Dense or a convolution of window 1), before its activation."""
    return _core.absorbed(weights[position(layer, "kernel")], channels, values)


def cut(layer, weights, removed):
    """`weights` (in `layer.weights` order) without the `removed` indices."""
    return _core.cut(weights, removed, lambda path: position(layer, path))


def add_to_bias(layer, config, weights, increment):
    """Adds `increment` to a layer's bias, creating the bias if the layer has none."""
    return _core.add_to_bias(config, weights, increment, lambda path: position(layer, path))


def set_width(layer, config, removed):
    """Lowers the number of channels a layer outputs in its config by `removed`."""
    _core.set_width(_registry.class_name(layer), config, removed)


def position(layer, path):
    """The index of the weight at `path` in `layer.weights`, or None if it has none."""
    owner, attr = _registry.resolve(layer, path)
    variable = getattr(owner, attr, None)
    if variable is None:
        return None
    return next(i for i, v in enumerate(layer.weights) if v is variable)
