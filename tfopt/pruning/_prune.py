"""prune() and strip(): from a Keras model to a model being pruned, and back."""

from absl import logging

from tfopt import _clone
from tfopt.pruning import _criteria
from tfopt.pruning import _graph
from tfopt.core import masks as _masks
from tfopt.core import prune_plan
from tfopt.pruning import _registry
from tfopt.pruning import _schedules
from tfopt.pruning._wrapper import PruneWrapper
from tfopt.pruning._wrapper import pruning_targets


def prune(model, schedule, criterion="magnitude", structure="unstructured", layers=None):
    """Returns a copy of `model` whose prunable layers prune themselves during `fit`.

    Every supported layer (Dense, Conv1D/2D/3D, DepthwiseConv, SeparableConv,
    Embedding, LSTM/GRU/SimpleRNN kernels, tfmot PrunableLayers) is wrapped in a
    `PruneWrapper`, nested models included; other layers pass through with their
    weights. The input model is not modified. Train with
    ``callbacks=[UpdatePruningStep()]``, then `strip` or `shrink`.

    With ``structure="channels"`` only layers whose units can really be removed
    are pruned: the model's output layers and layers feeding a residual Add or
    Concatenate stay whole (logged), and BatchNormalization / depthwise layers
    after a pruned layer drop the same channels.

    Args:
      model: a built Sequential or Functional tf_keras model.
      schedule: when and how much to prune, e.g. ``PolynomialDecay(0.0, 0.8,
        begin_step=0, end_step=2000)``; tfmot schedules work too.
      criterion: "magnitude" (L1), "l2", "random", "taylor" (|w * dL/dw|), a
        `Criterion`, or a function (weights, gradients) -> scores. Defaults to
        "magnitude".
      structure: "unstructured", "channels", or an N:M pair such as (2, 4).
        Defaults to "unstructured".
      layers: which layers to prune: None (all supported), a list of layer
        names, or a predicate ``layer -> bool``. Defaults to None.

    Returns:
      A new model with `PruneWrapper` layers.

    Example:
      >>> pruned = prune(model, ConstantSparsity(0.8, begin_step=0, frequency=10))
      >>> pruned.compile("adam", "sparse_categorical_crossentropy")
      >>> pruned.fit(x, y, callbacks=[UpdatePruningStep()])
    """
    _clone.validate_model(model, "prune")
    if wrappers(model):
        raise ValueError(
            f"{model.name!r} is already being pruned (it has PruneWrapper layers). Train it "
            "with callbacks=[UpdatePruningStep()], or call tfopt.pruning.strip(model) first "
            "to prune the stripped model again with a new schedule.")
    schedule = _schedules.get(schedule)
    criterion = _criteria.get(criterion)
    structure = _masks.parse_structure(structure)
    selected, explicit = _clone.select_layers(model, layers)
    for name in explicit:
        layer = _find(model, name)
        if not _registry.is_supported(layer) or isinstance(layer, PruneWrapper):
            raise ValueError(
                f"Layer {name!r} of type {type(layer).__name__} cannot be pruned. "
                f"Supported: {_registry.SUPPORTED}."
            )
        if not pruning_targets(layer, structure):
            raise ValueError(
                f"Layer {name!r} ({type(layer).__name__}) has no weights that structure "
                f"{_masks.structure_name(structure)!r} can prune"
                + (": N:M needs an input axis divisible by M." if isinstance(structure, tuple)
                   else ": channel pruning needs output units (Dense, Conv, Embedding).")
            )
    wrapped, skipped = [], []
    # Seeded criteria key their scores by position: identically built models get
    # the same masks although Keras names their layers dense, dense_1, ...
    positions = {id(layer): str(i) for i, layer in enumerate(_clone.all_layers(model))}
    pruned = _prune_level(model, _Plan(schedule, criterion, structure, selected, explicit,
                                       positions), wrapped, skipped)
    # A model's output layers keep their width under "channels" by design: no news.
    outputs = {tensor._keras_history.layer.name for tensor in model.outputs}
    expected, skipped = prune_plan.split_skipped(skipped, outputs, structure)
    for name, reason in expected:
        logging.info("tfopt.pruning: output layer %s left whole: %s.", name, reason)
    if skipped:
        logging.warning("tfopt.pruning: %d layer(s) of %r left whole:\n%s", len(skipped),
                        model.name, "\n".join(f"  {name}: {reason}" for name, reason in skipped))
    if not wrapped:
        raise ValueError(prune_plan.nothing_to_prune(model.name, structure, layers,
                                                     _registry.SUPPORTED))
    return pruned


def _find(model, name):
    return next(layer for layer in _clone.all_layers(model) if layer.name == name)


class _Plan:
    """The arguments of one `prune` call, shared by every model level."""

    def __init__(self, schedule, criterion, structure, selected, explicit, positions):
        self.schedule, self.criterion, self.structure = schedule, criterion, structure
        self.selected, self.explicit, self.positions = selected, explicit, positions


def _prune_level(model, plan, wrapped, skipped):
    structure = plan.structure
    chosen = []
    for layer in model.layers:
        if _clone.is_graph_model(layer) or isinstance(layer, PruneWrapper):
            continue
        if not plan.selected(layer) or not _registry.is_supported(layer):
            continue
        if pruning_targets(layer, structure):
            chosen.append(layer.name)
        else:
            skipped.append((layer.name, prune_plan.not_applicable(type(layer).__name__,
                                                                  structure)))
    leaders, leader_of, left_whole = prune_plan.leaders_and_followers(
        chosen, structure, lambda candidates: _graph.channel_plan(model, candidates),
        plan.explicit)
    skipped.extend(left_whole)

    def replace(layer):
        if layer.name in leaders:
            wrapper = PruneWrapper(_clone.copy_layer(layer), plan.schedule, plan.criterion,
                                   structure, score_key=plan.positions[id(layer)])
        elif layer.name in leader_of:
            wrapper = PruneWrapper(_clone.copy_layer(layer), structure=_masks.CHANNELS,
                                   follow=leader_of[layer.name])
        elif _clone.is_graph_model(layer):
            return _prune_level(layer, plan, wrapped, skipped), None, None
        else:
            return None
        wrapped.append(wrapper)
        return wrapper, wrapper.layer, layer.get_weights()

    return _clone.rebuild(model, replace)


def strip(model):
    """A plain Keras model: wrappers removed, pruned weights exactly zero.

    Predictions equal the pruned model's in inference mode. The result has no
    tfopt layers, so it saves, exports and converts like any Keras model.

    Args:
      model: a model returned by `prune` (during or after training).

    Returns:
      A new plain Keras model.

    Example:
      >>> plain = strip(pruned)
      >>> plain.save("model.keras")
    """
    _clone.validate_model(model, "strip")
    if not wrappers(model):
        logging.warning("tfopt.pruning: strip(%r) found no PruneWrapper layers; it returns an "
                        "unchanged copy.", model.name)

    def replace(layer):
        if not isinstance(layer, PruneWrapper):
            return None
        inner = _clone.copy_layer(layer.layer)
        return inner, inner, layer.stripped_weights()

    return _clone.rebuild(model, replace)


def wrappers(model):
    """All PruneWrapper layers of a model, nested models included."""
    return [layer for layer in _clone.all_layers(model) if isinstance(layer, PruneWrapper)]
