"""Channel groups of a tf-keras model: `tfopt.core.channel_plan` over its layer graph."""

from tfopt.core import channel_plan as _plan
from tfopt.pruning import _channels

ChannelGroup = _plan.ChannelGroup
flatten_indices = _plan.flatten_indices


def channel_plan(model, candidates=None):
    """Channel groups of the channel-prunable layers of one model level.

    Args:
      model: a Sequential or Functional tf-keras model (nested models are not
        entered).
      candidates: names of layers that may lose units; defaults to every layer.

    Returns:
      (groups, reasons): {leader name: ChannelGroup} for groups whose units can
      be removed, and {name: why not} for candidates that must stay whole.
    """
    return _plan.channel_plan(_channels.Graph(model), candidates)
