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
per-channel layers do. A group can be pruned when, with the removed units
zeroed in every member and per-channel layer, the removed channels are exactly
zero wherever a consumer reads them, and they never reach a model output, a
model input (an Add with the input), a Concatenate or an unknown layer.

`prune` uses the plan to choose leaders and wire followers; `shrink` uses it to
cut the units out.
"""

import dataclasses

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfopt.pruning import _registry

_L = keras.layers
# Layers that keep the channel axis last and apply the same thing to every channel.
_PASS_THROUGH = tuple(getattr(_L, name) for name in (
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
    "GaussianNoise", "ActivityRegularization", "Activation", "ReLU", "LeakyReLU", "ELU",
    "Rescaling", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
    "AveragePooling2D", "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
    "UpSampling1D", "UpSampling2D", "UpSampling3D") if hasattr(_L, name))
_ELEMENTWISE = tuple(getattr(_L, name) for name in (
    "Dropout", "GaussianDropout", "GaussianNoise", "ActivityRegularization", "Activation",
    "ReLU", "LeakyReLU", "ELU"))
# Layers whose value at 0 must be checked (ReLU(threshold > 0) and Rescaling(offset) are not 0).
_ACTIVATIONS = (_L.Activation, _L.ReLU, _L.LeakyReLU, _L.ELU, _L.Rescaling)
_CONSUMERS = (_L.Dense, _L.Conv1D, _L.Conv2D, _L.Conv3D, _L.SeparableConv1D, _L.SeparableConv2D,
              _L.LSTM, _L.GRU, _L.SimpleRNN)
# Merges whose output channel is 0 when all inputs are 0 (_SUMS) or when any is (_PRODUCTS).
_SUMS = (_L.Add, _L.Subtract, _L.Average, _L.Maximum, _L.Minimum)
_PRODUCTS = (_L.Multiply,)
# TF ops on Keras tensors (TFOpLambda) that act on each element alone.
_TF_SUMS = frozenset(("__operators__.add", "__operators__.sub", "math.add", "math.subtract",
                      "math.maximum", "math.minimum"))
_TF_PRODUCTS = frozenset(("__operators__.mul", "math.multiply"))
_TF_ELEMENTWISE = _TF_SUMS | _TF_PRODUCTS | frozenset((
    "__operators__.truediv", "math.truediv", "math.divide", "math.scalar_mul", "math.negative",
    "math.abs", "math.square", "math.sqrt", "math.exp", "math.sigmoid", "math.tanh",
    "nn.relu", "nn.relu6", "nn.elu", "nn.selu", "nn.gelu", "nn.silu", "nn.swish",
    "nn.leaky_relu", "identity", "cast"))


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
    """Layers sharing one unit mask, and what else changes when units go (layer names).

    Attributes:
      leader: the first layer of the group; it is scored and pruned.
      members: other layers whose output units are the group's channels (they
        meet the leader's at a merge); they copy the leader's unit mask.
      per_channel: BatchNormalization and depthwise layers on the group's
        channels; they copy the unit mask too.
      pass_through: layers that carry the channels on (activations, pooling,
        merges, element-wise TF ops).
      reshapes: Reshape layers whose target ends in the channel count.
      consumers: layers that mix channels; they lose the removed inputs.
      flatten: consumer -> the Flatten in front of it.
    """

    leader: str
    members: list = dataclasses.field(default_factory=list)
    per_channel: list = dataclasses.field(default_factory=list)
    pass_through: list = dataclasses.field(default_factory=list)
    reshapes: list = dataclasses.field(default_factory=list)
    consumers: list = dataclasses.field(default_factory=list)
    flatten: dict = dataclasses.field(default_factory=dict)

    @property
    def followers(self):
        """Every layer that copies the leader's unit mask while training."""
        return self.members + self.per_channel


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
        self.nodes = {}  # name -> its last node (the only one of a layer called once)
        self._zero = {}
        if not getattr(model, "_is_graph_network", False):
            # A Sequential built without keras.Input: a chain in layer order.
            names = list(self.layers)
            for producer, consumer in zip(names, names[1:]):
                self._link(producer, consumer)
            self.calls.update((name, 1) for name in names)
            self.order, self.outputs = names, set(names[-1:])
            return
        self.order = []  # producers before consumers
        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                name = self._add(node.layer)
                if name not in self.order:
                    self.order.append(name)
                if node.is_input:
                    continue
                self.calls[name] += 1
                self.nodes[name] = node
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

    def layer(self, name):
        return unwrap(self.layers[name])

    def shapes(self, name):
        """(input shapes, output shape) of a layer's one call, or None without a graph."""
        node = self.nodes.get(name)
        if node is None:
            return None
        return ([tuple(t.shape) for t in node.keras_inputs], tuple(node.output_shapes))

    def zero_preserving(self, name):
        """Whether the layer maps zero channels to zero (cached: it runs TF ops)."""
        if name not in self._zero:
            self._zero[name] = _maps_zero_to_zero(self, name)
        return self._zero[name]


def _zero_preserving(activation):
    """Whether activation(0) == 0. Activations that fail on a small batch do not."""
    try:
        # Two dimensions: softmax and other per-row activations refuse 1-D input.
        return bool(np.all(np.asarray(activation(tf.zeros([1, 2]))) == 0.0))
    except Exception:  # noqa: BLE001  (any failure means "cannot rely on it")
        return False


def _maps_zero_to_zero(graph, name):
    layer = graph.layer(name)
    activation = getattr(layer, "activation", None)
    if activation is not None and not _zero_preserving(activation):
        return False
    if isinstance(layer, _ACTIVATIONS):
        return _zero_preserving(layer)
    if tf_op_symbol(layer) is not None:
        node = graph.nodes[name]

        def zeros(value):
            return tf.zeros([1, 2]) if _is_keras_tensor(value) else value

        args, kwargs = tf.nest.map_structure(zeros, (node.call_args, node.call_kwargs))
        return _zero_preserving(lambda _: layer.function(*args, **kwargs))
    return True


def _is_keras_tensor(value):
    return hasattr(value, "_keras_history")  # keras.backend.is_keras_tensor raises on others


def _channels_last(layer):
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def _grouped(layer):
    return getattr(layer, "groups", 1) != 1


def _consumes_channels(layer):
    return isinstance(layer, _CONSUMERS) or _registry.bidirectional_rnn(layer)


def _keeps_channels_last(graph, name):
    """A Reshape whose input and output end in the same channel axis, or a TF op on
    one Keras tensor and constants, element by element."""
    layer, shapes = graph.layer(name), graph.shapes(name)
    if shapes is None:
        return False
    (inputs, *others), output = shapes
    if isinstance(layer, _L.Reshape):
        return not others and inputs[-1] == output[-1] and \
            np.prod(inputs[1:-1]) == np.prod(output[1:-1])
    node = graph.nodes[name]
    constants = [v for v in tf.nest.flatten((node.call_args, node.call_kwargs))
                 if not _is_keras_tensor(v)]
    scalars = all(v is None or isinstance(v, (bool, int, float, str)) for v in constants)
    return scalars and not others and tf_op_symbol(layer) in _TF_ELEMENTWISE


def _merge_kind(graph, name):
    """"sum" or "product" for element-wise merges of same-width inputs, else None."""
    layer, shapes = graph.layer(name), graph.shapes(name)
    symbol = tf_op_symbol(layer)
    if isinstance(layer, _SUMS) or symbol in _TF_SUMS:
        kind = "sum"
    elif isinstance(layer, _PRODUCTS) or symbol in _TF_PRODUCTS:
        kind = "product"
    else:
        return None
    if shapes is None or len(shapes[0]) < 2:
        return None  # one Keras tensor: an element-wise op with a constant
    widths = {shape[-1] for shape in shapes[0]} | {shapes[1][-1]}
    return kind if len(widths) == 1 else None  # no broadcasting across channels


def _kind(graph, name):
    """How a layer treats the channels it reads: what `_Walk` does with it."""
    layer = graph.layer(name)
    if isinstance(layer, _L.InputLayer):
        return "input"
    if graph.calls[name] != 1:
        return "shared"
    if _registry.per_channel_spec(layer) is not None:
        return "per_channel" if _channels_last(layer) else "channels_first"
    if isinstance(layer, _PASS_THROUGH) or _keeps_channels_last(graph, name):
        if not _channels_last(layer):
            return "channels_first"
        return "reshape" if isinstance(layer, _L.Reshape) else "pass_through"
    if _merge_kind(graph, name) is not None:
        return "merge"
    if isinstance(layer, _L.Flatten):
        return "flatten" if _channels_last(layer) else "channels_first"
    if _consumes_channels(layer) and len(graph.producers[name]) == 1:
        if not _channels_last(layer):
            return "channels_first"
        return "grouped" if _grouped(layer) else "consumer"
    return None


_WHY = {
    "input": "is a model input",
    "shared": "is called more than once",
    "channels_first": "is channels_first",
    "grouped": "is a grouped convolution, whose groups must stay equal in size",
}


class _Walk:
    """The channel group of one leader: every layer its channel space reaches.

    A layer belongs to the space when its output carries the group's channels.
    From each layer of the space the walk goes forward to all its consumers and,
    unless the layer made the channels itself (a member), back to all its
    inputs: a merge's other inputs must carry the same channels.
    """

    def __init__(self, graph, leader, eligible):
        self.graph, self.eligible = graph, eligible
        self.group = ChannelGroup(leader)
        self.space = {leader: "member"}  # name -> kind, in the order reached
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
            if self.space[name] != "member":
                for producer in self.graph.producers[name]:
                    queue += self._join(producer, name, backward=True)
            for consumer in self.graph.consumers[name]:
                queue += self._join(consumer, name, backward=False)
        self._check_zeros()
        return self.group

    def _join(self, name, via, backward):
        """Adds `name` (reached from `via`); returns it if the walk must go on from it."""
        graph, group = self.graph, self.group
        kind = _kind(graph, name)
        if backward and _registry.channel_capable(graph.layer(name)) and kind != "input":
            if name in self.space:
                return []
            reason = self.eligible(name)
            if reason is not None:
                raise ValueError(f"{via!r} also reads the units of {name!r}, which {reason}")
            self.space[name] = "member"
            group.members.append(name)
            return [name]
        if kind in ("consumer", "flatten") and not backward:
            consumer = name if kind == "consumer" else self._dense_after_flatten(name)
            self.reads.append((via, name))
            if consumer not in group.consumers:
                group.consumers.append(consumer)
            if kind == "flatten":
                group.flatten[consumer] = name
            return []
        if name in self.space:
            return []
        if kind in ("per_channel", "pass_through", "reshape", "merge"):
            self.space[name] = kind
            {"per_channel": group.per_channel, "reshape": group.reshapes}.get(
                kind, group.pass_through).append(name)
            return [name]
        layer = graph.layer(name)
        if kind == "input":
            raise ValueError(f"its channels meet the model input {name!r} at {via!r}")
        why = _WHY.get(kind, "tfopt cannot cut")
        raise ValueError(f"its channels reach {name!r} ({type(layer).__name__}), which {why}")

    def _dense_after_flatten(self, flatten):
        graph, name = self.graph, flatten
        while True:
            if name in graph.outputs or len(graph.consumers[name]) != 1:
                raise ValueError(f"Flatten {flatten!r} does not lead to a single Dense layer")
            name = graph.consumers[name][0]
            layer = graph.layer(name)
            if isinstance(layer, _L.Dense) and graph.calls[name] == 1:
                return name
            if not isinstance(layer, _ELEMENTWISE):
                raise ValueError(f"Flatten {flatten!r} leads to {name!r}, not to a Dense layer")
            if not graph.zero_preserving(name):
                raise ValueError(f"activation {name!r} does not map 0 to 0")

    def _check_zeros(self):
        """Removed channels must be exactly 0 wherever a consumer reads them."""
        graph, zero = self.graph, {}
        for name in graph.order:
            kind = self.space.get(name)
            if kind is None:
                continue
            inputs = [] if kind == "member" else [zero[p] for p in graph.producers[name]]
            if kind == "member":
                # Its removed units output activation(0): the mask zeroes kernel and bias.
                zero[name] = graph.zero_preserving(name) or f"activation of {name!r}"
            elif kind == "per_channel":
                zero[name] = graph.zero_preserving(name) or f"activation of {name!r}"
            elif kind == "merge" and _merge_kind(graph, name) == "product":
                zero[name] = True if True in inputs else inputs[0]  # 0 times anything
            else:
                reason = next((z for z in inputs if z is not True), True)
                if reason is True and not graph.zero_preserving(name):
                    reason = repr(name)
                zero[name] = reason
        for producer, consumer in self.reads:
            if zero[producer] is not True:
                raise ValueError(f"its channels reach {consumer!r} through {producer!r} without "
                                 f"being zero: {zero[producer]} does not map 0 to 0")


def channel_plan(model, candidates=None):
    """Channel groups of the channel-prunable layers of one model level.

    Args:
      model: a Sequential or Functional model (nested models are not entered).
      candidates: names of layers that may lose units; defaults to every layer.

    Returns:
      (groups, reasons): {leader name: ChannelGroup} for groups whose units can
      be removed, and {name: why not} for candidates that must stay whole.
    """
    graph = _Graph(model)
    groups, reasons, done = {}, {}, set()

    def eligible(name):
        layer = graph.layer(name)
        if candidates is not None and name not in candidates:
            return "is not being pruned"
        if not _channels_last(layer):
            return "is channels_first"
        if _grouped(layer):
            return "is a grouped convolution, whose groups must stay equal in size"
        if graph.calls[name] > 1:
            return "is shared (called on several inputs)"
        return None

    for name in graph.order:
        if name in done or (candidates is not None and name not in candidates):
            continue
        layer = graph.layer(name)
        if not _registry.channel_capable(layer):
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


def flatten_keep_indices(flatten_input_shape, kept_channels):
    """Positions in a channels-last Flatten output that belong to `kept_channels`."""
    shape = tuple(int(d) for d in flatten_input_shape[1:])
    channel_of = np.broadcast_to(np.arange(shape[-1]), shape).reshape(-1)
    return np.flatnonzero(np.isin(channel_of, kept_channels))
