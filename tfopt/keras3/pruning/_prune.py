"""prune() and strip() for Keras 3 models: to a model being pruned, and back."""

from absl import logging

from tfopt.core import layer_specs
from tfopt.core import masks as core_masks
from tfopt.core import prune_plan
from tfopt.keras3 import _clone
from tfopt.keras3 import _graph
from tfopt.keras3 import _models
from tfopt.keras3.pruning import _objects
from tfopt.keras3.pruning._layers import PRUNED_CLASSES
from tfopt.keras3.pruning._layers import PruningMixin
from tfopt.keras3.pruning._layers import base_class
from tfopt.keras3.pruning._layers import pruning_targets


def prune(model, schedule, criterion="magnitude", structure="unstructured", layers=None):
    """Returns a copy of a Keras 3 `model` whose prunable layers prune themselves in `fit`.

    Every supported layer (Dense, EinsumDense, Conv1D/2D/3D, DepthwiseConv,
    SeparableConv, Embedding, LSTM/GRU/SimpleRNN, Bidirectional RNNs,
    MultiHeadAttention) becomes its `Pruned*` twin (`PrunedDense`, ...),
    nested models included; other layers are copied with their weights. The
    input model is not modified. Train with
    ``callbacks=[tfopt.keras3.pruning.UpdatePruningStep()]``, then `strip` or
    `shrink`.

    With ``structure="channels"`` only layers whose units can really be removed
    are pruned: the model's output layers and layers whose removed channels
    would reach an output stay whole (logged), and BatchNormalization /
    depthwise layers after a pruned layer drop the same channels.

    Args:
      model: a built Sequential or Functional Keras 3 model.
      schedule: when and how much to prune, e.g. ``PolynomialDecay(0.0, 0.8,
        begin_step=0, end_step=2000)``.
      criterion: "magnitude" (L1), "l2", "random", "taylor" (|w * dL/dw|), a
        criterion object, or a function (weights, gradients) -> scores.
        Defaults to "magnitude".
      structure: "unstructured", "channels", or an N:M pair such as (2, 4).
        Defaults to "unstructured".
      layers: which layers to prune: None (all supported), a list of layer
        names, or a predicate ``layer -> bool``. Defaults to None.

    Returns:
      A new Keras 3 model with `Pruned*` layers.

    Example:
      >>> pruned = prune(model, ConstantSparsity(0.8, begin_step=0, frequency=10))
      >>> pruned.compile("adam", "sparse_categorical_crossentropy")
      >>> pruned.fit(x, y, callbacks=[UpdatePruningStep()])
    """
    _models.validate_graph_model(model, "prune")
    if pruned_layers(model):
        raise ValueError(
            f"{model.name!r} is already being pruned (it has tfopt Pruned* layers). Train it "
            "with callbacks=[UpdatePruningStep()], or call tfopt.keras3.pruning.strip(model) "
            "first to prune the stripped model again with a new schedule.")
    schedule = _objects.schedule(schedule)
    criterion = _objects.criterion(criterion)
    structure = core_masks.parse_structure(structure)
    selected, explicit = _clone.select_layers(model, layers)
    for name in explicit:
        layer = _find(model, name)
        if _twin(layer) is None or not pruning_targets(layer, structure):
            raise ValueError(
                f"Layer {name!r} of type {type(layer).__name__} cannot be pruned with "
                f"structure {core_masks.structure_name(structure)!r}. Supported: "
                f"{layer_specs.SUPPORTED}.")
    pruned, skipped = [], []
    positions = {id(layer): str(i) for i, layer in enumerate(_clone.all_layers(model))}
    plan = _Plan(schedule, criterion, structure, selected, explicit, positions)
    result = _prune_level(model, plan, pruned, skipped)
    outputs = {history.operation.name for history in
               (tensor._keras_history for tensor in model.outputs)}
    expected, skipped = prune_plan.split_skipped(skipped, outputs, structure)
    for name, reason in expected:
        logging.info("tfopt.keras3.pruning: output layer %s left whole: %s.", name, reason)
    if skipped:
        logging.warning("tfopt.keras3.pruning: %d layer(s) of %r left whole:\n%s", len(skipped),
                        model.name, "\n".join(f"  {n}: {r}" for n, r in skipped))
    if not pruned:
        raise ValueError(prune_plan.nothing_to_prune(model.name, structure, layers,
                                                     layer_specs.SUPPORTED))
    return result


def _twin(layer):
    """The Pruned* class for a built-in Keras layer (not a subclass of it), or None."""
    cls = PRUNED_CLASSES.get(type(layer).__name__)
    return cls if cls is not None and base_class(cls) is type(layer) else None


def _find(model, name):
    return next(layer for layer in _clone.all_layers(model) if layer.name == name)


class _Plan:
    """The arguments of one `prune` call, shared by every model level."""

    def __init__(self, schedule, criterion, structure, selected, explicit, positions):
        self.schedule, self.criterion, self.structure = schedule, criterion, structure
        self.selected, self.explicit, self.positions = selected, explicit, positions


def _prune_level(model, plan, pruned, skipped):
    structure = plan.structure
    chosen = []
    for layer in model.layers:
        if _models.is_graph_model(layer) or not plan.selected(layer) or _twin(layer) is None:
            continue
        if pruning_targets(layer, structure):
            chosen.append(layer.name)
        elif _graph.spec_for(layer) is not None:
            skipped.append((layer.name, prune_plan.not_applicable(type(layer).__name__,
                                                                  structure)))
    leaders, leader_of, left_whole = prune_plan.leaders_and_followers(
        chosen, structure, lambda candidates: _graph.channel_plan(model, candidates),
        plan.explicit)
    skipped.extend(left_whole)

    def replace(layer):
        if not isinstance(layer, PruningMixin) and layer.name in leaders:
            new = _twin(layer).from_config({
                **layer.get_config(), "schedule": plan.schedule, "criterion": plan.criterion,
                "structure": structure, "score_key": plan.positions[id(layer)]})
        elif layer.name in leader_of:
            new = _twin(layer).from_config({**layer.get_config(), "structure": structure,
                                            "follow": leader_of[layer.name]})
        elif _models.is_graph_model(layer):
            return _prune_level(layer, plan, pruned, skipped), None, None
        else:
            return None
        pruned.append(new)
        return new, new.set_base_weights, layer.get_weights()

    return _clone.rebuild(model, replace)


def strip(model):
    """A plain Keras 3 model: Pruned* layers back to their base class, pruned weights zero.

    Predictions equal the pruned model's in inference mode. The result holds
    no tfopt layers, so it saves, exports and converts like any Keras model.

    Args:
      model: a model returned by `prune` (during or after training).

    Returns:
      A new plain Keras 3 model.

    Example:
      >>> plain = strip(pruned)
      >>> plain.save("model.keras")
    """
    _models.validate_graph_model(model, "strip")
    if not pruned_layers(model):
        logging.warning("tfopt.keras3.pruning: strip(%r) found no pruned layers; it returns an "
                        "unchanged copy.", model.name)

    def replace(layer):
        if not isinstance(layer, PruningMixin):
            return None
        plain = base_class(type(layer)).from_config(plain_config(layer))
        return plain, plain, layer.stripped_weights()

    return _clone.rebuild(model, replace)


def plain_config(layer):
    """The config of a Pruned* layer's base class: its own, without the pruning arguments."""
    return {k: v for k, v in layer.get_config().items()
            if k not in ("schedule", "criterion", "structure", "follow", "score_key")}


def pruned_layers(model):
    """All tfopt Pruned* layers of a model, nested models included."""
    return [layer for layer in _clone.all_layers(model) if isinstance(layer, PruningMixin)]
