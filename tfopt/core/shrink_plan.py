"""What `shrink` removes: the cuts of every layer of one model level, from its channel groups.

`strip` keeps pruned units as zeros. A unit whose kernel column and bias are
zero outputs zero, its followers (BatchNormalization, depthwise convolution)
were masked to output zero too, and the layers that consume it multiply that
zero by their input weights. So the unit, its follower channels and the
matching input weights of the consumers can be deleted without changing any
output. Layers whose units meet at a residual merge were pruned as one group
and lose the same units. Where a removed channel is a constant rather than
zero (after a BatchNormalization that other groups' channels pass too, as in
DenseNet), the consumer takes that constant into its bias before the channel
goes.

Each Keras path describes its model level through a `ShrinkView`; the plan
over the channel groups (`tfopt.core.channel_plan`) is the same for both.
"""

import collections
import dataclasses

import numpy as np

from tfopt.core import channel_plan as _channel_plan
from tfopt.core import slices


class ShrinkView:
    """What the plan needs to know of the layers of one model level, by name."""

    def masked(self, name):
        """Whether the layer copied its leader's unit mask while training."""
        raise NotImplementedError

    def unit_mask(self, name):
        """The 1-D unit mask of a pruned layer."""
        raise NotImplementedError

    def outputs(self, name, channels):
        """`slices.outputs` of a unit-pruned layer."""
        raise NotImplementedError

    def per_channel(self, name, channels):
        """`slices.per_channel` of a BatchNormalization or depthwise layer."""
        raise NotImplementedError

    def inputs(self, name, channels):
        """`slices.inputs` of a consumer."""
        raise NotImplementedError

    def input_shape(self, name):
        """The input shape of a layer (a Flatten), batch axis included."""
        raise NotImplementedError


@dataclasses.dataclass
class Plan:
    """The cuts of one model level.

    Attributes:
      cuts: a `slices.Cuts` of every layer losing channels.
      widths: {layer: how many output channels it loses}.
      absorbed: [(consumer, layer whose output channels are constant, channels
        of the consumer's input)]: constants to fold into consumers' biases.
    """

    cuts: slices.Cuts
    widths: collections.Counter
    absorbed: list


def plan(groups, view, log=lambda name, reason: None, left_whole=None):
    """The cuts that remove every group's pruned units.

    Args:
      groups: {leader: ChannelGroup} of the model level (`channel_plan`).
      view: the level's `ShrinkView`.
      log: ``log(name, reason)`` for layers left whole. Defaults to nothing.
      left_whole: {name: reason} the channel plan gave for the layers it left
        out of every group; each is logged too. Defaults to None.

    Returns:
      A `Plan`.
    """
    for name, reason in (left_whole or {}).items():
        log(name, reason)
    result = Plan(slices.Cuts(), collections.Counter(), [])
    for name, group in groups.items():
        unmasked = [f for f in group.followers if not view.masked(f)]
        if unmasked:  # not pruned as one group (an older model?): cutting would change outputs
            log(name, f"{', '.join(unmasked)} kept its channels while training")
            continue
        members = [name] + group.members
        # A unit stays if any member uses it (members trained together share one mask).
        unit_mask = np.max([view.unit_mask(member) for member in members], axis=0)
        removed = np.flatnonzero(unit_mask == 0)
        if removed.size:
            _cut_group(group, members, removed, view, result)
    return result


def _cut_group(group, members, removed, view, result):
    cuts, widths = result.cuts, result.widths
    for member in members:
        widths[member] += removed.size
        cuts.add(member, view.outputs(member, removed))

    def at(name):  # the removed channels where `name` sees them
        return np.concatenate([start + removed for start in group.offsets.get(name, (0,))])

    for follower in group.per_channel + group.shared:
        cuts.add(follower, view.per_channel(follower, at(follower)))
    for reshape in group.reshapes:
        widths[reshape] += at(reshape).size
    for consumer in group.consumers:
        channels = at(consumer)
        if consumer in group.constants:
            result.absorbed.append((consumer, group.constants[consumer], channels))
        if consumer in group.flatten:
            channels = _channel_plan.flatten_indices(
                view.input_shape(group.flatten[consumer]), channels)
        cuts.add(consumer, view.inputs(consumer, channels))


def bias_increments(absorbed, values, kernel):
    """{consumer: what the constant channels it loses added to its outputs}.

    Args:
      absorbed: `Plan.absorbed`.
      values: {layer: its per-channel output values} for the layers named there.
      kernel: ``kernel(consumer) -> its kernel`` (masks applied).
    """
    biases = {}
    for consumer, source, channels in absorbed:
        increment = slices.absorbed(kernel(consumer), channels, values[source][channels])
        biases[consumer] = biases.get(consumer, 0) + increment
    return biases
