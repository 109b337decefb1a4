"""Channel groups: which output units can be removed, and what else must change.

Removing unit k of a layer changes every layer its output reaches. Layers that
keep the channel axis pass channel k on: activations, pooling, padding,
dropout, reshapes that keep channels last, element-wise TF ops and merges
(Add, Multiply, ...). Per-channel layers (BatchNormalization, depthwise
convolutions) drop channel k too. The first layers that mix channels
("consumers": Dense, convolutions, RNNs, Flatten -> Dense) lose input k.

Channels that meet at a merge are one channel space: every layer whose output
units feed a residual Add (through BatchNormalization, activations, a chain of
Adds) must remove the same units. Such layers form one group with one unit
mask: the first in the model leads, the others ("members") copy its mask, as
per-channel layers do. A Concatenate places the group's channels at an offset
among other groups' channels; the per-channel layers after it cannot follow
one group's mask, so removed channels leave them as constants.

A group can be pruned when its removed channels reach every consumer as zeros,
or as constants that the consumer takes into its bias (a Dense or 1x1
convolution), and never reach a model output, a model input (an Add with the
input) or a layer tfopt cannot cut through (LayerNormalization, attention...).

`prune` uses the plan to choose leaders and wire followers; `shrink` uses it to
cut the units out. The plan reads the model through a `channels.LayerGraph`,
which each Keras path fills from its model.
"""

import dataclasses

import numpy as np

from tfopt.core import channels as _channels


@dataclasses.dataclass
class ChannelGroup:
    """Layers sharing one unit mask, and what else changes when units go (layer names).

    Attributes:
      leader: the first layer of the group; it is scored and pruned.
      members: other layers whose output units are the group's channels (they
        meet the leader's at a merge); they copy the leader's unit mask.
      per_channel: BatchNormalization and depthwise layers on the group's
        channels; they copy the unit mask too.
      shared: per-channel layers after a Concatenate, which other groups'
        channels pass too: cut, not masked (their removed channels become
        constants that the consumers absorb).
      pass_through: layers that carry the channels on (activations, pooling,
        merges, Concatenate, element-wise TF ops).
      reshapes: Reshape layers whose target ends in the channel count.
      consumers: layers that mix channels; they lose the removed inputs.
      flatten: consumer -> the Flatten in front of it.
      offsets: layer -> where the group's channels start among those the layer
        reads (consumers, shared layers) or outputs (reshapes): (0,) before any
        Concatenate, one or more offsets after.
      constants: consumer -> the layer it reads the group's channels from, where
        removed channels are a constant rather than zero; shrink folds that
        constant into the consumer's bias.
    """

    leader: str
    members: list = dataclasses.field(default_factory=list)
    per_channel: list = dataclasses.field(default_factory=list)
    shared: list = dataclasses.field(default_factory=list)
    pass_through: list = dataclasses.field(default_factory=list)
    reshapes: list = dataclasses.field(default_factory=list)
    consumers: list = dataclasses.field(default_factory=list)
    flatten: dict = dataclasses.field(default_factory=dict)
    offsets: dict = dataclasses.field(default_factory=dict)
    constants: dict = dataclasses.field(default_factory=dict)

    @property
    def followers(self):
        """Every layer that copies the leader's unit mask while training."""
        return self.members + self.per_channel


_WHY = {
    "shared": "is called more than once",
    "channels_first": "is channels_first",
    "grouped": "is a grouped convolution, whose groups must stay equal in size",
}


class _Walk:
    """The channel group of one leader: every layer its channel space reaches.

    A layer belongs to the space when its output carries the group's channels.
    From each layer of the space the walk goes forward to all its consumers and,
    unless the layer made the channels itself (a member) or concatenated them
    with others, back to all its inputs: a merge's other inputs must carry the
    same channels. Then `_place` finds where the channels sit in each layer's
    output: after a Concatenate they sit at one or more offsets among other
    groups' channels, which only per-channel layers, pass-through layers,
    further Concatenates, merges of identically laid-out inputs and consumers
    may follow.
    """

    def __init__(self, graph, leader, eligible):
        self.graph, self.eligible = graph, eligible
        self.group = ChannelGroup(leader)
        self.space = {leader: "member"}  # name -> kind, in the order reached
        self.meeting = {}  # layer reached backward -> the merge the walk came from
        self.reads = []  # (layer of the space, consumer or Flatten reading it)

    def run(self):
        """The ChannelGroup, or raises ValueError with the reason it cannot be cut."""
        queue = [self.group.leader]
        while queue:
            name = queue.pop(0)
            if name in self.graph.outputs:
                raise ValueError(f"its channels reach the model output through {name!r}")
            if not self.graph.consumers[name]:
                raise ValueError(f"its channels reach {name!r}, which feeds nothing")
            if self.space[name] not in ("member", "concatenate"):
                for producer in self.graph.producers[name]:
                    queue += self._join_input(producer, name)
            for consumer in self.graph.consumers[name]:
                queue += self._join_consumer(consumer, name)
        self._place()
        self._check_values()
        return self.group

    def _join_input(self, name, via):
        """Adds `name`, whose output `via` (a merge or a layer after one) reads."""
        graph, group = self.graph, self.group
        if name in self.space:
            return []
        kind = _channels.kind(graph, name)
        # The merge where these channels meet the group's, for messages.
        at = via if self.space[via] == "merge" else self.meeting.get(via, via)
        if kind == "input":
            raise ValueError(f"its channels meet the model input {name!r} at {at!r}")
        if graph.channel_capable(name):
            reason = self.eligible(name)
            if reason is not None:
                raise ValueError(f"its channels meet those of {name!r} at {at!r}, and "
                                 f"{name!r} {reason}")
            group.members.append(name)
            self.space[name] = "member"
            return [name]
        if kind in ("per_channel", "pass_through", "reshape", "merge", "concatenate"):
            self.meeting[name] = at
            self.space[name] = kind
            return [name]
        raise self._cannot_cut(name, kind)

    def _join_consumer(self, name, via):
        """Adds `name`, which reads the output of `via`."""
        group = self.group
        kind = _channels.kind(self.graph, name)
        if kind in ("consumer", "flatten"):
            consumer = name if kind == "consumer" else self._dense_after_flatten(name)
            self.reads.append((via, name))
            if consumer not in group.consumers:
                group.consumers.append(consumer)
            if kind == "flatten":
                group.flatten[consumer] = name
            return []
        if name in self.space:
            return []
        if kind in ("per_channel", "pass_through", "reshape", "merge", "concatenate"):
            self.space[name] = kind
            return [name]
        raise self._cannot_cut(name, kind)

    def _place(self):
        """Offsets of the group's channels in each layer's output; sorts the layers."""
        graph, group, offsets, mixed = self.graph, self.group, {}, set()
        for name in graph.order:
            kind = self.space.get(name)
            if kind is None:
                continue
            producers = [p for p in graph.producers[name] if p in self.space]
            if kind == "member":
                offsets[name] = (0,)
                continue
            if kind == "concatenate":
                widths = [shape[-1] for shape in graph.shapes(name)[0]]
                starts = np.cumsum([0] + widths[:-1])
                offsets[name] = tuple(sorted(
                    int(start) + o for p, start in zip(graph.producers[name], starts)
                    if p in self.space for o in offsets[p]))
                mixed.add(name)
                group.pass_through.append(name)
                continue
            layouts = {(offsets[p], p in mixed) for p in producers}
            if len(layouts) != 1 or (kind == "merge" and len(producers) != len(
                    graph.producers[name])):
                raise ValueError(f"its channels reach {name!r}, which merges them with other "
                                 "channels")
            offsets[name] = offsets[producers[0]]
            if producers[0] in mixed:
                mixed.add(name)
                if kind == "per_channel":
                    self.space[name] = kind = "shared"  # other groups' channels pass too
            {"per_channel": group.per_channel, "shared": group.shared,
             "reshape": group.reshapes}.get(kind, group.pass_through).append(name)
        consumer_of = {flatten: dense for dense, flatten in group.flatten.items()}
        for producer, reader in self.reads:
            group.offsets[consumer_of.get(reader, reader)] = offsets[producer]
        group.offsets.update((name, offsets[name]) for name in group.shared + group.reshapes)

    def _cannot_cut(self, name, kind):
        layer = self.graph.layer(name)
        why = _WHY.get(kind, "tfopt cannot cut")
        return ValueError(f"its channels reach {name!r} ({type(layer).__name__}), which {why}")

    def _dense_after_flatten(self, flatten):
        graph, name = self.graph, flatten
        while True:
            if name in graph.outputs or len(graph.consumers[name]) != 1:
                raise ValueError(f"Flatten {flatten!r} does not lead to a single Dense layer")
            name = graph.consumers[name][0]
            class_name = graph.class_name(name)
            if class_name == "Dense" and graph.calls[name] == 1:
                return name
            if class_name not in _channels.ELEMENTWISE:
                raise ValueError(f"Flatten {flatten!r} leads to {name!r}, not to a Dense layer")
            if graph.at_zero(name) != _channels.ZERO:
                raise ValueError(f"activation {name!r} does not map 0 to 0")

    def _check_values(self):
        """Removed channels must reach consumers as zeros, or as a constant the consumer
        can take into its bias. Members and masked per-channel layers make them zero."""
        graph, value = self.graph, {}  # name -> (ZERO | CONSTANT | None, why not zero)
        for name in graph.order:
            kind = self.space.get(name)
            if kind is None:
                continue
            inputs = [value[p] for p in graph.producers[name] if p in self.space]
            if kind in ("member", "per_channel"):
                # The mask zeroes kernel and bias: the activation sees 0.
                value[name] = _applied(graph, name, (_channels.ZERO, None), "activation of ")
            elif kind == "shared":  # not masked: 0 becomes a constant (beta, a bias)
                state, why = inputs[0]
                batch_norm = graph.class_name(name) == "BatchNormalization"
                if state == _channels.ZERO or (state == _channels.CONSTANT and batch_norm):
                    value[name] = (_channels.CONSTANT, f"{name!r} holds other groups' "
                                                       "channels too, so it is not masked")
                else:  # a depthwise window over a constant sees the zero padding
                    value[name] = (None, why or f"{name!r} slides a window over a constant")
            elif kind in ("merge", "concatenate"):
                product = kind == "merge" and _channels.merge_kind(graph, name) == "product"
                value[name] = _merged(inputs, product)
            elif _channels.pads(graph, name) and inputs[0][0] == _channels.CONSTANT:
                value[name] = (None, f"{name!r} pads a constant with zeros ({inputs[0][1]})")
            else:
                value[name] = _applied(graph, name, inputs[0], "")
        for producer, reader in self.reads:
            state, why = value[producer]
            if state == _channels.ZERO:
                continue
            if state == _channels.CONSTANT and _channels.can_absorb_constant(graph, reader):
                self.group.constants[reader] = producer
                continue
            if state == _channels.CONSTANT:
                raise ValueError(f"its removed channels reach {reader!r} as a constant ({why}), "
                                 f"which {reader!r} cannot take into a bias")
            raise ValueError(f"its removed channels are not silent where {reader!r} reads "
                             f"them: {why}")


def _applied(graph, name, value, what):
    """The value of removed channels after layer `name` (an element-wise function)."""
    state, why = value
    if state == _channels.ZERO:
        state = graph.at_zero(name)
        if state == _channels.CONSTANT:
            why = f"the {what}{name!r} does not map 0 to 0"
        elif state is None:
            why = f"the {what}{name!r} does not map 0 to 0 channel by channel (it mixes them)"
    return state, why


def _merged(inputs, product):
    zero, constant = _channels.ZERO, _channels.CONSTANT
    states = [state for state, _ in inputs]
    if product and zero in states:
        return zero, None  # 0 times anything
    if all(state == zero for state in states):
        return zero, None
    state = constant if all(s in (zero, constant) for s in states) else None
    return state, next(why for s, why in inputs if s == state)


def channel_plan(graph, candidates=None):
    """Channel groups of the channel-prunable layers of one model level.

    Args:
      graph: the model's `channels.LayerGraph` (nested models are not entered).
      candidates: names of layers that may lose units; defaults to every layer.

    Returns:
      (groups, reasons): {leader name: ChannelGroup} for groups whose units can
      be removed, and {name: why not} for candidates that must stay whole.
    """
    groups, reasons, done = {}, {}, set()

    def eligible(name):
        layer = graph.layer(name)
        if candidates is not None and name not in candidates:
            return "is not being pruned (a residual group is pruned whole or not at all)"
        if not _channels.channels_last(layer):
            return "is channels_first"
        if _channels.grouped(layer):
            return "is a grouped convolution, whose groups must stay equal in size"
        if graph.calls[name] > 1:
            return "is shared (called on several inputs)"
        return None

    for name in graph.order:
        if name in done or (candidates is not None and name not in candidates):
            continue
        layer = graph.layer(name)
        if not graph.channel_capable(name):
            if candidates is not None:
                reasons[name] = f"{type(layer).__name__} has no output units to remove"
            continue
        reason = eligible(name)
        walk = _Walk(graph, name, eligible)
        if reason is None:
            try:
                group = walk.run()
            except ValueError as error:
                reason = str(error)
        members = [m for m, kind in walk.space.items() if kind == "member"]
        done.update(members)
        if reason is None:
            groups[name] = group
        else:
            reasons.update((m, reason) for m in members
                           if candidates is None or m in candidates)
    return groups, reasons


def flatten_indices(flatten_input_shape, channels):
    """Positions in a channels-last Flatten output that belong to `channels`."""
    shape = tuple(int(d) for d in flatten_input_shape[1:])
    channel_of = np.broadcast_to(np.arange(shape[-1]), shape).reshape(-1)
    return np.flatnonzero(np.isin(channel_of, channels))
