"""shrink(): cut channel-pruned units out of a model, so it really computes less.

`strip` keeps pruned units as zeros. A unit whose kernel column and bias are
zero outputs zero, its followers (BatchNormalization, depthwise convolution)
were masked to output zero too, and the layers that consume it multiply that
zero by their input weights. So the unit, its follower channels and the
matching input weights of the consumers can be deleted without changing any
output: `shrink` rebuilds the model with those slices gone. Layers whose units
meet at a residual merge were pruned as one group and lose the same units.
Where a removed channel is a constant rather than zero (after a
BatchNormalization that other groups' channels pass too, as in DenseNet), the
consumer takes that constant into its bias before the channel goes.
"""

import collections

import numpy as np
import tf_keras as keras
from absl import logging

from tfopt import _clone
from tfopt.pruning import _channels
from tfopt.pruning import _graph
from tfopt.core import masks as _masks
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
    if all(w.unit_mask() is None or w.unit_mask().all() for w in leaders):
        steps = [int(w.pruning_step.numpy()) for w in leaders]
        logging.warning(
            "tfopt.pruning: shrink(%r) found no pruned units, so it removes nothing (pruning "
            "step %d). Train the pruned model with callbacks=[UpdatePruningStep()] until its "
            "schedule has pruned, then shrink.", model.name, max(steps + [0]))


def _validate_channel_pruned(model):
    found = wrappers(model)
    if any(w.structure == _masks.CHANNELS for w in found):
        return
    tfmot = [layer.name for layer in _clone.all_layers(model)
             if type(layer).__name__ == "PruneLowMagnitude"]
    if found:
        structures = sorted({_masks.structure_name(w.structure) for w in found})
        given = f"PruneWrapper layers with structure {', '.join(map(repr, structures))}"
    elif tfmot:
        given = (f"tfmot's prune_low_magnitude wrappers ({', '.join(tfmot[:3])}"
                 f"{', ...' if len(tfmot) > 3 else ''}), which zero single weights")
    else:
        given = "no PruneWrapper layers"
    raise ValueError(
        f"shrink needs a model pruned with structure='channels'; {model.name!r} has {given}, "
        "so no whole units are zero and none can be removed. Prune with "
        "tfopt.pruning.prune(model, schedule, structure='channels') and train it, or use "
        "tfopt.pruning.strip(model) to keep the zeros in place."
    )


def _shrink_level(model):
    cuts, widths, biases = _plan(model)

    def replace(layer):
        if _clone.is_graph_model(layer):
            return _shrink_level(layer), None, None
        name = layer.name
        if not (name in cuts or name in widths or isinstance(layer, PruneWrapper)):
            return None
        inner = _channels.unwrap(layer)
        weights = (layer.stripped_weights() if isinstance(layer, PruneWrapper)
                   else layer.get_weights())
        config = inner.get_config()
        if name in widths:
            _slices.set_width(inner, config, widths[name])
        removed = cuts.of(name)
        weights = _slices.cut(inner, weights, removed)
        if name in biases:
            own = removed.get(("kernel", -1), [])  # its own units, if cut too
            increment = np.delete(biases[name], own)
            weights = _slices.add_to_bias(inner, config, weights, increment)
        new = inner.__class__.from_config(config)
        return new, new, weights

    return _clone.rebuild(model, replace)


def _plan(model):
    """(Cuts, {layer: channels removed from its output}, {consumer: bias increment}).

    The bias increments are what removed channels that reach a consumer as a
    constant (not zero) contributed to its outputs.
    """
    layers = {layer.name: layer for layer in model.layers}
    pruned = {name for name, layer in layers.items()
              if isinstance(layer, PruneWrapper) and layer.structure == _masks.CHANNELS
              and _registry.channel_capable(layer.layer)}
    groups, reasons = _graph.channel_plan(model, candidates=pruned)
    for name, reason in reasons.items():
        logging.info("tfopt.pruning: shrink leaves %s whole: %s.", name, reason)
    cuts, widths, absorbed = _slices.Cuts(), collections.Counter(), []
    for name, group in groups.items():
        unmasked = [f for f in group.followers if not isinstance(layers[f], PruneWrapper)]
        if unmasked:  # not pruned as one group (an older model?): cutting would change outputs
            logging.info("tfopt.pruning: shrink leaves %s whole: %s kept its channels while "
                         "training.", name, ", ".join(unmasked))
            continue
        members = [name] + group.members
        # A unit stays if any member uses it (members trained together share one mask).
        unit_mask = np.max([layers[member].unit_mask() for member in members], axis=0)
        removed = np.flatnonzero(unit_mask == 0)
        if not removed.size:
            continue
        for member in members:
            widths[member] += removed.size
            cuts.add(member, _slices.outputs(_channels.unwrap(layers[member]), removed))
        def at(name):  # the removed channels where `name` sees them
            return np.concatenate([start + removed for start in group.offsets.get(name, (0,))])

        for follower in group.per_channel + group.shared:
            layer = _channels.unwrap(layers[follower])
            cuts.add(follower, _slices.per_channel(layer, at(follower)))
        for reshape in group.reshapes:
            widths[reshape] += at(reshape).size
        for consumer in group.consumers:
            channels = at(consumer)
            if consumer in group.constants:
                absorbed.append((consumer, group.constants[consumer], channels))
            if consumer in group.flatten:
                channels = _graph.flatten_indices(
                    layers[group.flatten[consumer]].input_shape, channels)
            cuts.add(consumer, _slices.inputs(_channels.unwrap(layers[consumer]), channels))
    return cuts, widths, _absorbed_biases(model, layers, absorbed)


def _absorbed_biases(model, layers, absorbed):
    """{consumer: what the constant channels it loses added to its outputs}."""
    if not absorbed:
        return {}
    sources = sorted({source for _, source, _ in absorbed})
    values = dict(zip(sources, _constant_channels(model, sources)))
    biases = {}
    for consumer, source, channels in absorbed:
        layer = layers[consumer]
        weights = (layer.stripped_weights() if isinstance(layer, PruneWrapper)
                   else layer.get_weights())
        increment = _slices.absorbed(_channels.unwrap(layer), weights, channels,
                                     values[source][channels])
        biases[consumer] = biases.get(consumer, 0) + increment
    return biases


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
