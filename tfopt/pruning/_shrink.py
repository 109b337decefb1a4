"""shrink(): cut channel-pruned units out of a tf-keras model, so it really computes less.

Why removing pruned units keeps every output, and which cuts a channel group
needs, is `tfopt.core.shrink_plan`'s (where each layer type keeps its channels:
`tfopt.core.slices`). This module is the tf-keras glue: it reads the model's
PruneWrappers, probes channels that became constants, and rebuilds the model
with the smaller layers.
"""

import numpy as np
import tf_keras as keras
from absl import logging

from tfopt import _clone
from tfopt.pruning import _channels
from tfopt.pruning import _graph
from tfopt.core import masks as _masks
from tfopt.core import prune_plan
from tfopt.core import shrink_plan
from tfopt.core import slices
from tfopt.pruning import _registry
from tfopt.pruning import _slices
from tfopt.pruning._prune import wrappers
from tfopt.pruning._wrapper import PruneWrapper


def shrink(model):
    """A plain Keras model with the pruned neurons and filters physically removed.

    Each channel-pruned layer keeps only its unpruned units (smaller `units`,
    `filters` or `output_dim`), the BatchNormalization and depthwise layers
    after it keep the same channels, and the layers consuming it lose the
    matching input weights. Layers whose outputs meet at a residual Add were
    pruned as one group and lose the same units; a Concatenate's consumers
    lose each group's channels at its offset. Predictions equal
    `strip(model)`'s in inference mode, while parameters, FLOPs and latency
    fall. Layers that had to stay whole (e.g. the model's output layer, or
    channels normalized together by a LayerNormalization) are copied with their
    masks applied, as `strip` would.

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
    _warn_if_nothing_was_pruned(model)
    return _shrink_level(model)


def _warn_if_nothing_was_pruned(model):
    leaders = [w for w in wrappers(model) if w.structure == _masks.CHANNELS and w.follow is None]
    if prune_plan.nothing_pruned(w.unit_mask() for w in leaders):
        steps = [int(w.pruning_step.numpy()) for w in leaders]
        logging.warning("tfopt.pruning: %s", prune_plan.nothing_pruned_warning(model.name, steps))


def _validate_channel_pruned(model):
    found = wrappers(model)
    if any(w.structure == _masks.CHANNELS for w in found):
        return
    tfmot = [layer.name for layer in _clone.all_layers(model)
             if type(layer).__name__ == "PruneLowMagnitude"]
    if found:
        given = prune_plan.structures_given("PruneWrapper", [w.structure for w in found])
    elif tfmot:
        given = (f"tfmot's prune_low_magnitude wrappers ({', '.join(tfmot[:3])}"
                 f"{', ...' if len(tfmot) > 3 else ''}), which zero single weights")
    else:
        given = "no PruneWrapper layers"
    raise ValueError(prune_plan.not_channel_pruned(model.name, given, "tfopt.pruning"))


def _shrink_level(model):
    layers = {layer.name: layer for layer in model.layers}
    pruned = {name for name, layer in layers.items()
              if isinstance(layer, PruneWrapper) and layer.structure == _masks.CHANNELS
              and _registry.channel_capable(layer.layer)}
    groups, reasons = _graph.channel_plan(model, candidates=pruned)
    plan = shrink_plan.plan(groups, _View(layers), log=_log_left_whole, left_whole=reasons)
    biases = _absorbed_biases(model, layers, plan.absorbed)

    def replace(layer):
        if _clone.is_graph_model(layer):
            return _shrink_level(layer), None, None
        name = layer.name
        if not (name in plan.cuts or name in plan.widths or isinstance(layer, PruneWrapper)):
            return None
        inner = _channels.unwrap(layer)
        config = inner.get_config()
        weights = slices.shrunk(
            _registry.class_name(inner), config, _weights(layer),
            lambda path: _slices.position(inner, path), plan.cuts.of(name),
            plan.widths[name], biases.get(name))
        new = inner.__class__.from_config(config)
        return new, new, weights

    return _clone.rebuild(model, replace)


def _log_left_whole(name, reason):
    logging.info("tfopt.pruning: shrink leaves %s whole: %s.", name, reason)


def _weights(layer):
    """A layer's weights in its base layer's order, masks applied."""
    return layer.stripped_weights() if isinstance(layer, PruneWrapper) else layer.get_weights()


class _View(shrink_plan.ShrinkView):
    """The layers of one tf-keras model level, for the core shrink plan."""

    def __init__(self, layers):
        self.layers = layers

    def masked(self, name):
        return isinstance(self.layers[name], PruneWrapper)

    def unit_mask(self, name):
        return self.layers[name].unit_mask()

    def outputs(self, name, channels):
        return _slices.outputs(_channels.unwrap(self.layers[name]), channels)

    def per_channel(self, name, channels):
        return _slices.per_channel(_channels.unwrap(self.layers[name]), channels)

    def inputs(self, name, channels):
        return _slices.inputs(_channels.unwrap(self.layers[name]), channels)

    def input_shape(self, name):
        return self.layers[name].input_shape


def _absorbed_biases(model, layers, absorbed):
    """{consumer: what the constant channels it loses added to its outputs}."""
    if not absorbed:
        return {}
    sources = sorted({source for _, source, _ in absorbed})
    values = dict(zip(sources, _constant_channels(model, sources)))

    def kernel(name):
        inner = _channels.unwrap(layers[name])
        return _weights(layers[name])[_slices.position(inner, "kernel")]

    return shrink_plan.bias_increments(absorbed, values, kernel)


def _constant_channels(model, names):
    """Per-channel values of the named layers' outputs on one all-zero example.

    Only read where channels are constant (they no longer depend on the input),
    so any example gives the same values; unknown sizes are taken as 8.
    """
    outputs = {node.layer.name: node.output_tensors
               for nodes in model._nodes_by_depth.values() for node in nodes}
    probe = keras.Model(model.inputs, [outputs[name] for name in names])
    example = [np.zeros([1] + [8 if d is None else d for d in x.shape[1:]],
                        x.dtype.as_numpy_dtype) for x in model.inputs]
    results = probe(example if len(example) > 1 else example[0], training=False)
    results = results if isinstance(results, (list, tuple)) else [results]
    return [np.asarray(r).reshape(-1, np.shape(r)[-1])[0] for r in results]
