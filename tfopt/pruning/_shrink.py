"""shrink(): cut channel-pruned units out of a model, so it really computes less.

`strip` keeps pruned units as zeros. A unit whose kernel column and bias are
zero outputs zero, its followers (BatchNormalization, depthwise convolution)
were masked to output zero too, and the layers that consume it multiply that
zero by their input weights. So the unit, its follower channels and the
matching input weights of the consumers can be deleted without changing any
output: `shrink` rebuilds the model with those slices gone.
"""

import collections

import numpy as np
import tf_keras as keras
from absl import logging

from tfopt import _clone
from tfopt.pruning import _graph
from tfopt.pruning import _masks
from tfopt.pruning import _registry
from tfopt.pruning._prune import wrappers
from tfopt.pruning._wrapper import PruneWrapper

_L = keras.layers
_SEPARABLE = (_L.SeparableConv1D, _L.SeparableConv2D)
_TRANSPOSED = (_L.Conv1DTranspose, _L.Conv2DTranspose, _L.Conv3DTranspose)
_RNN = (_L.LSTM, _L.GRU, _L.SimpleRNN)


def shrink(model):
    """A plain Keras model with the pruned neurons and filters physically removed.

    Each channel-pruned layer keeps only its unpruned units (smaller `units`,
    `filters` or `output_dim`), the BatchNormalization and depthwise layers
    after it keep the same channels, and the layers consuming it lose the
    matching input weights. Predictions equal `strip(model)`'s in inference
    mode, while parameters, FLOPs and latency fall. Layers that had to stay
    whole (e.g. those feeding a residual Add or the model output) are copied
    with their masks applied, as `strip` would.

    Args:
      model: a model returned by ``prune(..., structure="channels")``, usually
        after training; nested Sequential and Functional models are shrunk too.

    Returns:
      A new plain Keras model without tfopt layers. The input model is not
      modified.

    Example:
      >>> pruned = prune(model, OneShot(0.5), structure="channels")
      >>> pruned.compile("adam", "sparse_categorical_crossentropy")
      >>> pruned.fit(x, y, callbacks=[UpdatePruningStep()])
      >>> small = shrink(pruned)
      >>> count_flops(small) < count_flops(pruned)
      True
    """
    _clone.validate_model(model, "shrink")
    _validate_channel_pruned(model)
    return _shrink_level(model)


def _validate_channel_pruned(model):
    found = wrappers(model)
    if any(w.structure == _masks.CHANNELS for w in found):
        return
    if found:
        structures = sorted({_masks.structure_name(w.structure) for w in found})
        given = f"PruneWrapper layers with structure {', '.join(map(repr, structures))}"
    else:
        given = "no PruneWrapper layers"
    raise ValueError(
        f"shrink needs a model pruned with structure='channels'; {model.name!r} has {given}, "
        "so no whole units are zero and none can be removed. Prune with "
        "tfopt.pruning.prune(model, schedule, structure='channels') and train it, or use "
        "tfopt.pruning.strip(model) to keep the zeros in place."
    )


def _shrink_level(model):
    cuts, widths = _cuts(model)

    def replace(layer):
        if _clone.is_graph_model(layer):
            return _shrink_level(layer), None, None
        if not (layer.name in cuts or layer.name in widths or isinstance(layer, PruneWrapper)):
            return None
        inner = _graph.unwrap(layer)
        weights = (layer.stripped_weights() if isinstance(layer, PruneWrapper)
                   else layer.get_weights())
        config = inner.get_config()
        if layer.name in widths:
            _set_width(inner, config, widths[layer.name])
        new = inner.__class__.from_config(config)
        return new, new, _sliced(inner, weights, cuts.get(layer.name, ()))

    return _clone.rebuild(model, replace)


def _cuts(model):
    """({layer: [(path, axis, kept indices)]}, {layer: channels kept}) of one model level."""
    layers = {layer.name: layer for layer in model.layers}
    pruned = {name for name, layer in layers.items()
              if isinstance(layer, PruneWrapper) and layer.structure == _masks.CHANNELS
              and _registry.channel_capable(layer.layer)}
    groups, reasons = _graph.channel_plan(model, candidates=pruned)
    for name, reason in reasons.items():
        logging.info("tfopt.pruning: shrink leaves %s whole: %s.", name, reason)
    cuts, widths = collections.defaultdict(list), {}
    for name, group in groups.items():
        unmasked = [f for f in group.followers if not isinstance(layers[f], PruneWrapper)]
        if unmasked:  # not pruned as one group (an older model?): cutting would change outputs
            logging.info("tfopt.pruning: shrink leaves %s whole: %s kept its channels while "
                         "training.", name, ", ".join(unmasked))
            continue
        members = [name] + group.members
        # A unit stays if any member uses it (members trained together share one mask).
        unit_mask = np.max([layers[member].unit_mask() for member in members], axis=0)
        kept = np.flatnonzero(unit_mask)
        if kept.size == unit_mask.size:
            continue
        for member in members:
            widths[member] = kept.size
            cuts[member] += _output_cuts(_graph.unwrap(layers[member]), kept)
        for follower in group.per_channel:
            cuts[follower] += _follower_cuts(_graph.unwrap(layers[follower]), kept)
        widths.update((reshape, kept.size) for reshape in group.reshapes)
        for consumer in group.consumers:
            rows = kept
            if consumer in group.flatten:
                rows = _graph.flatten_keep_indices(
                    layers[group.flatten[consumer]].input_shape, kept)
            cuts[consumer] += _input_cuts(_graph.unwrap(layers[consumer]), rows)
    return cuts, widths


def _set_width(layer, config, width):
    """Sets the number of channels a layer outputs in its config."""
    if isinstance(layer, _L.Reshape):
        *rest, last = config["target_shape"]
        if last != -1:  # -1 adapts by itself
            config["target_shape"] = (*rest, width)
    elif isinstance(layer, _L.Dense):
        config["units"] = width
    elif isinstance(layer, _L.Embedding):
        config["output_dim"] = width
    else:
        config["filters"] = width


def _output_cuts(layer, kept):
    spec = _registry.spec_for(layer)
    return [(t.path, t.unit_axis, kept) for t in spec.pruned + spec.unit_weights
            if t.unit_axis is not None]


def _follower_cuts(layer, kept):
    cuts = [(t.path, t.unit_axis, kept) for t in _registry.per_channel_spec(layer).unit_weights]
    if isinstance(layer, _L.BatchNormalization):
        # Not masked during training, but one value per channel all the same.
        cuts += [("moving_mean", 0, kept), ("moving_variance", 0, kept)]
    return cuts


def _input_cuts(layer, kept):
    """Where a consumer's weights meet its input channels."""
    if isinstance(layer, _L.Dense):
        return [("kernel", 0, kept)]
    if isinstance(layer, _TRANSPOSED):
        return [("kernel", -1, kept)]  # (..., filters, input channels)
    if isinstance(layer, _SEPARABLE):
        # Depthwise output channel c * multiplier + j comes from input channel c.
        multiplier = layer.depth_multiplier
        pointwise = (kept[:, None] * multiplier + np.arange(multiplier)).reshape(-1)
        return [("depthwise_kernel", -2, kept), ("pointwise_kernel", -2, pointwise)]
    if isinstance(layer, _RNN):
        return [("cell.kernel", 0, kept)]
    if isinstance(layer, _L.Bidirectional):
        return [("forward_layer.cell.kernel", 0, kept), ("backward_layer.cell.kernel", 0, kept)]
    return [("kernel", -2, kept)]  # Conv1D/2D/3D


def _sliced(layer, weights, cuts):
    """`weights` (in `layer.weights` order) with every cut applied."""
    position = {id(v): i for i, v in enumerate(layer.weights)}
    weights = list(weights)
    for path, axis, kept in cuts:
        owner, attr = _registry.resolve(layer, path)
        variable = getattr(owner, attr, None)
        if variable is not None:
            i = position[id(variable)]
            weights[i] = np.take(weights[i], kept, axis=axis)
    return weights
