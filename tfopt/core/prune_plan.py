"""What `prune` and `shrink` decide before they touch a layer, for either Keras.

`prune` exists once per Keras version (one wraps layers in `PruneWrapper`, the
other swaps in `Pruned*` classes); which layers lead, which follow a leader's
channels, which stay whole and what the user is told about it are decided
here, on layer names.
"""

from tfopt.core import masks


def not_applicable(layer_type, structure):
    """The reason a supported layer is left whole: `structure` has nothing to prune in it."""
    return f"{layer_type}: structure {masks.structure_name(structure)!r} does not apply"


def leaders_and_followers(chosen, structure, channel_plan, explicit):
    """Which of one model level's layers prune on their own and which follow one.

    Args:
      chosen: names of the level's layers that `structure` can prune.
      structure: a parsed structure (`masks.parse_structure`).
      channel_plan: ``candidates -> (groups, reasons)``, the level's channel plan
        (`tfopt.core.channel_plan`); called for channel pruning only.
      explicit: the layer names the user asked for by name: one the channel plan
        must leave whole is an error rather than a note.

    Returns:
      ``(leaders, leader_of, skipped)``: the names that prune with their own
      schedule, ``{follower: leader}`` for layers that drop their leader's
      channels (BatchNormalization, depthwise layers), and ``[(name, reason)]``
      for the layers left whole.

    Raises:
      ValueError: a layer named in `explicit` cannot be channel-pruned.
    """
    if structure != masks.CHANNELS:
        return set(chosen), {}, []
    groups, reasons = channel_plan(set(chosen))
    for name, reason in reasons.items():
        if name in explicit:
            raise ValueError(f"Layer {name!r} cannot be channel-pruned: {reason}. Use "
                             "structure='unstructured' for it, or leave it out of `layers`.")
    leader_of = {f: leader for leader, group in groups.items() for f in group.followers}
    return set(groups), leader_of, list(reasons.items())


def split_skipped(skipped, output_names, structure):
    """``(by_design, unexpected)``: a model's output layers keep their width under "channels".

    Args:
      skipped: ``[(name, reason)]`` of the layers `prune` left whole.
      output_names: names of the layers that produce the model's outputs.
      structure: the parsed structure of the `prune` call.
    """
    by_design = [(name, reason) for name, reason in skipped
                 if name in output_names and structure == masks.CHANNELS]
    return by_design, [entry for entry in skipped if entry not in by_design]


def nothing_to_prune(model_name, structure, layers, supported):
    """The error message of a `prune` call that found no layer to prune."""
    return (f"prune found nothing to prune in {model_name!r} with structure "
            f"{masks.structure_name(structure)!r} and layers={layers!r}. "
            f"Supported layers: {supported}.")


def not_channel_pruned(model_name, given, api):
    """The error message of `shrink` on a model that no channel pruning went through.

    Args:
      model_name: the model's name.
      given: what the model has instead, e.g. "no PruneWrapper layers".
      api: the pruning module of the model's Keras, e.g. "tfopt.keras3.pruning".
    """
    return (f"shrink needs a model pruned with structure='channels'; {model_name!r} has "
            f"{given}, so no whole units are zero and none can be removed. Prune with "
            f"{api}.prune(model, schedule, structure='channels') and train it, or use "
            f"{api}.strip(model) to keep the zeros in place.")


def structures_given(kind, structures):
    """"<kind> layers with structure 'a', 'b'": what `shrink` found instead of channels."""
    names = sorted({masks.structure_name(structure) for structure in structures})
    return f"{kind} layers with structure {', '.join(map(repr, names))}"


def nothing_pruned(unit_masks):
    """True when no channel leader has dropped a unit yet (masks None or all kept)."""
    return all(mask is None or mask.all() for mask in unit_masks)


def nothing_pruned_warning(model_name, steps):
    """`shrink`'s warning for a model whose schedule has not pruned yet."""
    return (f"shrink({model_name!r}) found no pruned units, so it removes nothing (pruning "
            f"step {max(list(steps) + [0])}). Train the pruned model with "
            "callbacks=[UpdatePruningStep()] until its schedule has pruned, then shrink.")
