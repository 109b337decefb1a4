"""How the layers of one model connect, and what each does to a channel.

`Graph` reads a Sequential or Functional model's layer links from its nodes.
`kind` says how a layer treats the channels it reads (passes them on, holds
per-channel weights, merges inputs element by element, concatenates, mixes
them, or cannot be cut through) and `at_zero` what it outputs for a channel that
is zero. `_graph` builds channel groups on top of these.
"""

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfopt.pruning import _registry

_L = keras.layers
# Layers that keep the channel axis last and treat every channel alike.
_PASS_THROUGH = tuple(getattr(_L, name) for name in (
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
    "GaussianNoise", "ActivityRegularization", "Activation", "ReLU", "LeakyReLU", "ELU",
    "Rescaling", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
    "AveragePooling2D", "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
    "UpSampling1D", "UpSampling2D", "UpSampling3D") if hasattr(_L, name))
# Element-wise layers allowed between a Flatten and its Dense.
ELEMENTWISE = tuple(getattr(_L, name) for name in (
    "Dropout", "GaussianDropout", "GaussianNoise", "ActivityRegularization", "Activation",
    "ReLU", "LeakyReLU", "ELU"))
# Layers computing a function of each value, which may not map 0 to 0.
_FUNCTIONS = (_L.Activation, _L.ReLU, _L.LeakyReLU, _L.ELU, _L.Rescaling)
# Zero padding turns a constant channel into one that is not constant at the borders.
_PADDING = tuple(getattr(_L, f"ZeroPadding{d}D") for d in (1, 2, 3))
_CONSUMERS = (_L.Dense, _L.Conv1D, _L.Conv2D, _L.Conv3D, _L.SeparableConv1D, _L.SeparableConv2D,
              _L.LSTM, _L.GRU, _L.SimpleRNN)
_TRANSPOSED = (_L.Conv1DTranspose, _L.Conv2DTranspose, _L.Conv3DTranspose)
# Merges whose output channel is 0 when all inputs are 0 (_SUMS) or when any is (_PRODUCTS).
_SUMS = (_L.Add, _L.Subtract, _L.Average, _L.Maximum, _L.Minimum)
_PRODUCTS = (_L.Multiply,)
# TF ops on Keras tensors (TFOpLambda layers) that act on each element alone.
_TF_SUMS = frozenset(("__operators__.add", "__operators__.sub", "math.add", "math.subtract",
                      "math.maximum", "math.minimum"))
_TF_PRODUCTS = frozenset(("__operators__.mul", "math.multiply"))
_TF_ELEMENTWISE = _TF_SUMS | _TF_PRODUCTS | frozenset((
    "__operators__.truediv", "math.truediv", "math.divide", "math.scalar_mul", "math.negative",
    "math.abs", "math.square", "math.sqrt", "math.exp", "math.sigmoid", "math.tanh",
    "nn.relu", "nn.relu6", "nn.elu", "nn.selu", "nn.gelu", "nn.silu", "nn.swish",
    "nn.leaky_relu", "identity", "cast"))

ZERO, CONSTANT = "zero", "constant"  # what a layer outputs for a zero channel


def unwrap(layer):
    """The layer inside a tfopt PruneWrapper (or the layer itself)."""
    from tfopt.pruning._wrapper import PruneWrapper  # local: the wrapper imports _registry
    return layer.layer if isinstance(layer, PruneWrapper) else layer


def tf_op_symbol(layer):
    """The TF function a TFOpLambda layer applies ("math.multiply"), else None.

    tf_keras makes these layers when TF ops meet Keras tensors (`x * 0.5`); the
    class is private, so it is recognised by name.
    """
    return getattr(layer, "symbol", None) if type(layer).__name__ == "TFOpLambda" else None


def _is_keras_tensor(value):
    return hasattr(value, "_keras_history")  # keras.backend.is_keras_tensor raises on others


class Graph:
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
        self._at_zero = {}
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
        return [tuple(t.shape) for t in node.keras_inputs], tuple(node.output_shapes)

    def at_zero(self, name):
        """ZERO or CONSTANT: what the layer outputs where its input (or, for a layer
        with units, its pre-activation) is zero; None if that depends on other
        channels. Cached: it runs TF ops."""
        if name not in self._at_zero:
            self._at_zero[name] = _at_zero(self, name)
        return self._at_zero[name]


def value_at_zero(function):
    """ZERO or CONSTANT for an element-wise function, None if it mixes channels or fails."""
    try:
        # Channel 0 is 0 in both rows; only its neighbours differ. Two dimensions:
        # softmax and other per-row functions refuse 1-D input.
        values = np.asarray(function(tf.constant([[0.0, 0.0, 0.0], [0.0, 3.0, -2.0]])))
    except Exception:  # noqa: BLE001  (any failure means "cannot rely on it")
        return None
    if values.shape != (2, 3) or values[0, 0] != values[1, 0] or not np.isfinite(values[0, 0]):
        return None
    return ZERO if values[0, 0] == 0.0 else CONSTANT


def _at_zero(graph, name):
    layer = graph.layer(name)
    activation = getattr(layer, "activation", None)
    if activation is not None:
        return value_at_zero(activation)
    if isinstance(layer, _FUNCTIONS):
        return value_at_zero(layer)
    if tf_op_symbol(layer) is not None:
        node = graph.nodes[name]

        def call(x):
            args, kwargs = tf.nest.map_structure(
                lambda v: x if _is_keras_tensor(v) else v, (node.call_args, node.call_kwargs))
            return layer.function(*args, **kwargs)

        return value_at_zero(call)
    return ZERO


def channels_last(layer):
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def grouped(layer):
    return getattr(layer, "groups", 1) != 1


def pads(layer):
    """Whether the layer adds zeros around its input (a constant channel stops being one)."""
    return isinstance(layer, _PADDING)


def can_absorb_constant(layer):
    """Whether a consumer can take a constant input channel into its bias: Dense and
    convolutions whose kernel covers one position (no padding to break the constant)."""
    if isinstance(layer, _L.Dense):
        return True
    conv = isinstance(layer, (_L.Conv1D, _L.Conv2D, _L.Conv3D)) and not isinstance(
        layer, _TRANSPOSED + (_L.SeparableConv1D, _L.SeparableConv2D))
    return conv and all(size == 1 for size in layer.kernel_size)


def _keeps_channels_last(graph, name):
    """A Reshape whose input and output end in the same channel axis, or a TF op
    applied element by element to one Keras tensor and constants."""
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


def merge_kind(graph, name):
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


def _concatenates_channels(graph, name):
    layer, shapes = graph.layer(name), graph.shapes(name)
    if not isinstance(layer, _L.Concatenate) or shapes is None:
        return False
    return layer.axis in (-1, len(shapes[1]) - 1)


def consumes_channels(layer):
    return isinstance(layer, _CONSUMERS) or _registry.bidirectional_rnn(layer)


def kind(graph, name):
    """How a layer treats the channels it reads (see `_graph._Walk`), or None."""
    layer = graph.layer(name)
    if isinstance(layer, _L.InputLayer):
        return "input"
    if graph.calls[name] != 1:
        return "shared"
    if _registry.per_channel_spec(layer) is not None:
        return "per_channel" if channels_last(layer) else "channels_first"
    if isinstance(layer, _PASS_THROUGH) or _keeps_channels_last(graph, name):
        if not channels_last(layer):
            return "channels_first"
        return "reshape" if isinstance(layer, _L.Reshape) else "pass_through"
    if merge_kind(graph, name) is not None:
        return "merge"
    if _concatenates_channels(graph, name):
        return "concatenate"
    if isinstance(layer, _L.Flatten):
        return "flatten" if channels_last(layer) else "channels_first"
    if consumes_channels(layer) and len(graph.producers[name]) == 1:
        if not channels_last(layer):
            return "channels_first"
        return "grouped" if grouped(layer) else "consumer"
    return None
