"""Channel groups: which output units can be removed, and what else must change.

Removing unit k of a layer (its "leader") changes every layer its output reaches:
layers that keep the channel count pass it on (pooling, dropout, activations
with f(0) = 0), per-channel layers (BatchNormalization, depthwise convolutions)
must drop channel k too ("followers"), and the first layers that mix channels
("consumers": Dense, convolutions, RNNs, Flatten -> Dense) lose input k. A unit
is only removable when every path ends in such a consumer; paths into Add,
Concatenate, a model output or an unknown layer leave the leader whole.

`prune` uses the plan to choose leaders and wire followers; `shrink` uses it to
cut the units out.
"""

import dataclasses

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfopt.pruning import _registry

_L = keras.layers
_PASS_THROUGH = tuple(getattr(_L, name) for name in (
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
    "GaussianNoise", "ActivityRegularization", "Activation", "ReLU", "LeakyReLU", "ELU",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
    "UpSampling1D", "UpSampling2D", "UpSampling3D") if hasattr(_L, name))
_ELEMENTWISE = tuple(getattr(_L, name) for name in (
    "Dropout", "GaussianDropout", "GaussianNoise", "ActivityRegularization", "Activation",
    "ReLU", "LeakyReLU", "ELU"))
# ReLU(threshold > 0, negative_slope != 0) maps 0 to a nonzero value, so check them all.
_ACTIVATIONS = (_L.Activation, _L.ReLU, _L.LeakyReLU, _L.ELU)
_CONSUMERS = (_L.Dense, _L.Conv1D, _L.Conv2D, _L.Conv3D, _L.SeparableConv1D, _L.SeparableConv2D,
              _L.LSTM, _L.GRU, _L.SimpleRNN)


def unwrap(layer):
    """The layer inside a tfopt PruneWrapper (or the layer itself)."""
    from tfopt.pruning._wrapper import PruneWrapper  # local: the wrapper imports this module
    return layer.layer if isinstance(layer, PruneWrapper) else layer


def tf_op_symbol(layer):
    """The TF function a TFOpLambda layer applies ("math.multiply"), else None.

    tf_keras makes these layers when TF ops meet Keras tensors (`x * 0.5`); the
    class is private, so it is recognised by name.
    """
    return getattr(layer, "symbol", None) if type(layer).__name__ == "TFOpLambda" else None


@dataclasses.dataclass
class ChannelGroup:
    """Everything that changes when units of `leader` are removed (layer names)."""

    leader: str
    followers: list = dataclasses.field(default_factory=list)
    pass_through: list = dataclasses.field(default_factory=list)
    consumers: list = dataclasses.field(default_factory=list)
    flatten: dict = dataclasses.field(default_factory=dict)  # consumer -> Flatten before it


class _Graph:
    """Producer/consumer links between the layers of one Sequential or Functional model.

    Read from the model's nodes rather than its config: the config's
    `inbound_nodes` differ between layer kinds (TFOpLambda nodes hold keyword
    arguments and constants), while every node lists its Keras input tensors.
    """

    def __init__(self, model):
        self.layers = {layer.name: layer for layer in model.layers}
        self.producers = {name: [] for name in self.layers}  # per input tensor, all calls
        self.consumers = {name: [] for name in self.layers}
        self.calls = {name: 0 for name in self.layers}
        if not getattr(model, "_is_graph_network", False):
            # A Sequential built without keras.Input: a chain in layer order.
            names = list(self.layers)
            for producer, consumer in zip(names, names[1:]):
                self._link(producer, consumer)
            self.calls.update((name, 1) for name in names)
            self.outputs = set(names[-1:])
            return
        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                name = self._add(node.layer)
                if node.is_input:
                    continue
                self.calls[name] += 1
                for tensor in node.keras_inputs:
                    self._link(self._add(tensor._keras_history.layer), name)
        self.outputs = {tensor._keras_history.layer.name for tensor in model.outputs}

    def _add(self, layer):
        # Sequential models do not list their InputLayer among `layers`.
        if layer.name not in self.layers:
            self.layers[layer.name] = layer
            self.producers[layer.name], self.consumers[layer.name] = [], []
            self.calls[layer.name] = 0
        return layer.name

    def _link(self, producer, consumer):
        self.producers[consumer].append(producer)
        self.consumers[producer].append(consumer)


def _zero_preserving(activation):
    """Whether activation(0) == 0. Activations that fail on a small batch do not."""
    try:
        # Two dimensions: softmax and other per-row activations refuse 1-D input.
        return bool(np.all(np.asarray(activation(tf.zeros([1, 2]))) == 0.0))
    except Exception:  # noqa: BLE001  (any failure means "cannot rely on it")
        return False


def _consumes_channels(layer):
    return isinstance(layer, _CONSUMERS) or _registry.bidirectional_rnn(layer)


def _channels_last(layer):
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def _grouped(layer):
    return getattr(layer, "groups", 1) != 1


def _walk(graph, leader):
    """Follows `leader`'s channels to their consumers; returns (group, reason)."""
    group = ChannelGroup(leader)
    frontier = [leader]
    while frontier:
        name = frontier.pop()
        if name in graph.outputs:
            return None, f"its channels reach the model output through {name!r}"
        consumers = graph.consumers[name]
        if not consumers:
            return None, f"its channels reach {name!r}, which feeds nothing"
        for consumer in consumers:
            layer = unwrap(graph.layers[consumer])
            kind = type(layer).__name__
            if len(graph.producers[consumer]) != 1:
                return None, (f"its channels reach {consumer!r} ({kind}), which has several "
                              "inputs (residual Add, Concatenate or a shared layer)")
            if isinstance(layer, _PASS_THROUGH):
                if isinstance(layer, _ACTIVATIONS) and not _zero_preserving(layer):
                    return None, f"activation {consumer!r} does not map 0 to 0"
                if not _channels_last(layer):
                    return None, f"{consumer!r} is channels_first"
                group.pass_through.append(consumer)
                frontier.append(consumer)
            elif isinstance(layer, _L.Flatten):
                if not _channels_last(layer):
                    # It moves axis 1 last before flattening, so units are no longer innermost.
                    return None, f"Flatten {consumer!r} is channels_first"
                dense, reason = _dense_after_flatten(graph, consumer)
                if dense is None:
                    return None, reason
                group.flatten[dense] = consumer
                group.consumers.append(dense)
            elif _registry.follower_spec(layer) is not None:
                group.followers.append(consumer)
                frontier.append(consumer)
            elif _consumes_channels(layer) and _channels_last(layer):
                if _grouped(layer):
                    return None, f"its channels reach grouped convolution {consumer!r}"
                group.consumers.append(consumer)
            else:
                return None, f"its channels reach {consumer!r} ({kind}), which tfopt cannot cut"
    return group, None


def _dense_after_flatten(graph, flatten):
    name = flatten
    while True:
        if name in graph.outputs or len(graph.consumers[name]) != 1:
            return None, f"Flatten {flatten!r} does not lead to a single Dense layer"
        name = graph.consumers[name][0]
        layer = unwrap(graph.layers[name])
        if isinstance(layer, _L.Dense):
            return name, None
        if not isinstance(layer, _ELEMENTWISE):
            return None, f"Flatten {flatten!r} leads to {name!r}, not to a Dense layer"
        if isinstance(layer, _ACTIVATIONS) and not _zero_preserving(layer):
            return None, f"activation {name!r} does not map 0 to 0"


def channel_plan(model, candidates=None):
    """Channel groups of the channel-prunable layers of one model level.

    Args:
      model: a Sequential or Functional model (nested models are not entered).
      candidates: names of layers to consider; defaults to every layer.

    Returns:
      (groups, reasons): {leader name: ChannelGroup} for layers whose units can
      be removed, and {name: why not} for candidates that must stay whole.
    """
    graph = _Graph(model)
    groups, reasons = {}, {}
    for name, wrapped in graph.layers.items():
        if candidates is not None and name not in candidates:
            continue
        layer = unwrap(wrapped)
        spec = _registry.spec_for(layer)
        if spec is None or not spec.channel_capable:
            if candidates is not None:
                reasons[name] = f"{type(layer).__name__} has no output units to remove"
            continue
        activation = getattr(layer, "activation", None)
        if activation is not None and not _zero_preserving(activation):
            reasons[name] = "its activation does not map 0 to 0, so removed units are not silent"
        elif not _channels_last(layer):
            reasons[name] = "it is channels_first"
        elif _grouped(layer):
            reasons[name] = "it is a grouped convolution, whose groups must stay equal in size"
        elif graph.calls[name] > 1:
            reasons[name] = "it is shared (called on several inputs)"
        else:
            group, reason = _walk(graph, name)
            if group is None:
                reasons[name] = reason
            else:
                groups[name] = group
    return groups, reasons


def flatten_keep_indices(flatten_input_shape, kept_channels):
    """Positions in a channels-last Flatten output that belong to `kept_channels`."""
    shape = tuple(int(d) for d in flatten_input_shape[1:])
    channel_of = np.broadcast_to(np.arange(shape[-1]), shape).reshape(-1)
    return np.flatnonzero(np.isin(channel_of, kept_channels))
