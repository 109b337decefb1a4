"""shrink() for Keras 3 models: cut channel-pruned units out, so the model computes less.

Why removing pruned units keeps every output, and which cuts a channel group
needs, is `tfopt.core.shrink_plan`'s (where each layer type keeps its
channels: `tfopt.core.slices`), shared with the tf-keras `shrink`. This module
is the Keras 3 glue: it reads the model's Pruned* layers, finds where a weight
path sits in a layer's weight list (Keras 3 keeps Dense and convolution
kernels in ``_kernel`` behind a property), probes channels that became
constants with a Keras 3 sub-model, and rebuilds the model with smaller layers.
"""

import keras
import numpy as np
from absl import logging

from tfopt.core import masks as core_masks
from tfopt.core import prune_plan
from tfopt.core import shrink_plan
from tfopt.core import slices
from tfopt.keras3 import _clone
from tfopt.keras3 import _graph
from tfopt.keras3 import _models
from tfopt.keras3 import _weights
from tfopt.keras3.pruning._layers import PruningMixin
from tfopt.keras3.pruning._layers import base_class
from tfopt.keras3.pruning._prune import plain_config
from tfopt.keras3.pruning._prune import pruned_layers


def shrink(model):
    """A plain Keras 3 model with the pruned neurons and filters physically removed.

    Each channel-pruned layer keeps only its unpruned units (smaller `units`,
    `filters` or `output_dim`), the BatchNormalization and depthwise layers
    after it keep the same channels, and the layers consuming it lose the
    matching input weights (a Dense after a Flatten included). Layers whose
    outputs meet at a residual Add (layer or ``keras.ops.add``) were pruned as
    one group and lose the same units; a Concatenate's consumers lose each
    group's channels at its offset. Predictions equal `strip(model)`'s in
    inference mode, while parameters and FLOPs fall. Layers that had to stay
    whole (e.g. the model's output layer) are copied with their masks applied,
    as `strip` would.

    Args:
      model: a Keras 3 model returned by ``prune(..., structure="channels")``,
        usually after training; nested Sequential and Functional models are
        shrunk too.

    Returns:
      A new plain Keras 3 model without tfopt layers. The input model is not
      modified.

    Example:
      >>> pruned = prune(model, OneShot(0.5), structure="channels")
      >>> pruned.compile("adam", "sparse_categorical_crossentropy")
      >>> pruned.fit(x, y, callbacks=[UpdatePruningStep()])
      >>> small = shrink(pruned)
      >>> count_flops(small) < count_flops(pruned)
      True
    """
    _models.validate_graph_model(model, "shrink")
    _validate_channel_pruned(model)
    _warn_if_nothing_was_pruned(model)
    return _shrink_level(model)


def _validate_channel_pruned(model):
    found = pruned_layers(model)
    if any(layer.structure == core_masks.CHANNELS for layer in found):
        return
    if found:
        given = prune_plan.structures_given("Pruned*", [layer.structure for layer in found])
    else:
        given = "no tfopt Pruned* layers"
    raise ValueError(prune_plan.not_channel_pruned(model.name, given, "tfopt.keras3.pruning"))


def _warn_if_nothing_was_pruned(model):
    leaders = [layer for layer in pruned_layers(model)
               if layer.structure == core_masks.CHANNELS and layer.follow is None]
    if prune_plan.nothing_pruned(layer.unit_mask() for layer in leaders):
        steps = [int(keras.ops.convert_to_numpy(layer.pruning_step)) for layer in leaders
                 if layer.pruning_step is not None]
        logging.warning("tfopt.keras3.pruning: %s",
                        prune_plan.nothing_pruned_warning(model.name, steps))


def _shrink_level(model):
    layers = {layer.name: layer for layer in model.layers}
    candidates = {name for name, layer in layers.items()
                  if isinstance(layer, PruningMixin) and layer.structure == core_masks.CHANNELS
                  and _graph.spec_for(layer) is not None
                  and _graph.spec_for(layer).channel_capable}
    groups, reasons = _graph.channel_plan(model, candidates=candidates)
    plan = shrink_plan.plan(groups, _View(layers), log=_log_left_whole, left_whole=reasons)
    biases = _absorbed_biases(model, layers, plan.absorbed)

    def replace(layer):
        if _models.is_graph_model(layer):
            return _shrink_level(layer), None, None
        name = layer.name
        pruned = isinstance(layer, PruningMixin)
        if not (name in plan.cuts or name in plan.widths or pruned):
            return None
        cls = base_class(type(layer)) if pruned else type(layer)
        config = plain_config(layer) if pruned else layer.get_config()
        weights = slices.shrunk(
            _graph.class_name(layer), config, _plain_weights(layer),
            lambda path: _position(layer, path), plan.cuts.of(name), plan.widths[name],
            biases.get(name))
        new = cls.from_config(config)
        return new, new, weights

    return _clone.rebuild(model, replace)


def _log_left_whole(name, reason):
    logging.info("tfopt.keras3.pruning: shrink leaves %s whole: %s.", name, reason)


def _plain_weights(layer):
    """A layer's weights in its base class's order, masks applied."""
    return layer.stripped_weights() if isinstance(layer, PruningMixin) else layer.get_weights()


def _position(layer, path):
    """The index of the weight at `path` among `_plain_weights(layer)`, or None if absent."""
    owner, attr = _weights.resolve(layer, path)
    variable = getattr(owner, attr, None)
    if variable is None:
        return None
    variables = layer.base_variables() if isinstance(layer, PruningMixin) else layer.weights
    return next(i for i, v in enumerate(variables) if v is variable)


class _View(shrink_plan.ShrinkView):
    """The layers of one Keras 3 model level, for the core shrink plan."""

    def __init__(self, layers):
        self.layers = layers

    def masked(self, name):
        return isinstance(self.layers[name], PruningMixin)

    def unit_mask(self, name):
        return self.layers[name].unit_mask()

    def outputs(self, name, channels):
        return slices.outputs(_graph.spec_for(self.layers[name]), channels)

    def per_channel(self, name, channels):
        layer = self.layers[name]
        return slices.per_channel(_graph.class_name(layer), _graph.per_channel_spec(layer),
                                  channels)

    def inputs(self, name, channels):
        layer = self.layers[name]
        return slices.inputs(_graph.class_name(layer), channels,
                             getattr(layer, "depth_multiplier", 1))

    def input_shape(self, name):
        return tuple(self.layers[name].input.shape)


def _absorbed_biases(model, layers, absorbed):
    """{consumer: what the constant channels it loses added to its outputs}."""
    if not absorbed:
        return {}
    sources = sorted({source for _, source, _ in absorbed})
    values = dict(zip(sources, _constant_channels(model, sources)))

    def kernel(name):
        return _plain_weights(layers[name])[_position(layers[name], "kernel")]

    return shrink_plan.bias_increments(absorbed, values, kernel)


def _constant_channels(model, names):
    """Per-channel values of the named layers' outputs on one all-zero example.

    Only read where channels are constant (they no longer depend on the input),
    so any example gives the same values; unknown sizes are taken as 8.
    """
    functional = _graph.graph_model(model)
    outputs = {node.operation.name: node.outputs
               for nodes in functional._nodes_by_depth.values() for node in nodes}
    probe = keras.Model(functional.inputs, [outputs[name][0] for name in names])
    example = [np.zeros([1] + [8 if d is None else d for d in x.shape[1:]], x.dtype)
               for x in functional.inputs]
    results = probe(example, training=False)
    results = results if isinstance(results, (list, tuple)) else [results]
    return [keras.ops.convert_to_numpy(r).reshape(-1, r.shape[-1])[0] for r in results]
